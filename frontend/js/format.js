// Message formatting: `**bold**`, `_italic_`, `` `code` ``, fenced code blocks (```), and links.
// `parse` turns a text into plain tokens, with no DOM; `render` builds them with DOM nodes, every
// piece of text as a text node (never innerHTML), links and @mentions through `richText`.

/** Nesting depth of bold and italic inside each other. */
const MAX_DEPTH = 3;

const wordChar = (c) => c !== undefined && /[\p{L}\p{N}_]/u.test(c);

/**
 * The tokens of a message text: `{t: 'pre', text}` (a fenced block), `{t: 'code', text}`,
 * `{t: 'b', children}`, `{t: 'i', children}`, `{t: 'text', text}`. Markers without a closing
 * partner stay text.
 */
export function parse(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(/```([^\n`]*\n)?([\s\S]*?)```/g)) {
    if (m.index > last) out.push(...inline(text.slice(last, m.index), 0));
    out.push({ t: 'pre', text: m[2].replace(/\n$/, '') });
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(...inline(text.slice(last), 0));
  return out;
}

function inline(s, depth) {
  const out = [];
  let buf = '';
  const flush = () => {
    if (buf) out.push({ t: 'text', text: buf });
    buf = '';
  };
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === '`') {
      const j = s.indexOf('`', i + 1);
      if (j > i + 1) {
        flush();
        out.push({ t: 'code', text: s.slice(i + 1, j) });
        i = j + 1;
        continue;
      }
    }
    if (c === '*' && s[i + 1] === '*' && depth < MAX_DEPTH) {
      const j = s.indexOf('**', i + 2);
      if (j > i + 2 && s[i + 2] !== ' ' && s[j - 1] !== ' ') {
        flush();
        out.push({ t: 'b', children: inline(s.slice(i + 2, j), depth + 1) });
        i = j + 2;
        continue;
      }
    }
    // `_` opens only at a word's start and closes only at a word's end (snake_case stays text).
    if (c === '_' && depth < MAX_DEPTH && !wordChar(s[i - 1]) && s[i + 1] && !' _'.includes(s[i + 1])) {
      let j = s.indexOf('_', i + 2);
      while (j > 0 && (wordChar(s[j + 1]) || s[j - 1] === ' ')) j = s.indexOf('_', j + 1);
      if (j > i + 1) {
        flush();
        out.push({ t: 'i', children: inline(s.slice(i + 1, j), depth + 1) });
        i = j + 1;
        continue;
      }
    }
    buf += c;
    i += 1;
  }
  flush();
  return out;
}

/** The plain text of tokens (what the formatting leaves for an excerpt or a notification). */
export function plain(tokens) {
  return tokens.map((t) => (t.children ? plain(t.children) : t.text)).join('');
}

/**
 * DOM nodes of a message text. `h` builds an element (dom.js), `rich(text)` gives the nodes of
 * plain text with its links and @mentions (dom.js `richText`).
 */
export function render(text, h, rich) {
  const build = (tokens) => tokens.map((t) => {
    switch (t.t) {
      case 'pre': return h('pre', { class: 'code-block' }, h('code', null, t.text));
      case 'code': return h('code', null, t.text);
      case 'b': return h('strong', null, build(t.children));
      case 'i': return h('em', null, build(t.children));
      default: return rich(t.text);
    }
  });
  return build(parse(text));
}
