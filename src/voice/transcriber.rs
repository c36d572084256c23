//! The transcriber actor: takes jobs from `voice:jobs` through the `transcribers` consumer group,
//! on any node that runs one (or in a `chatnode transcriber` process), and stores the results.
//!
//! A job is acknowledged only in the script that stores its result. A job whose transcriber
//! died stays pending in the group; after `voice.claim_after_secs` another transcriber takes it
//! over with XAUTOCLAIM. Engine failures that may pass (timeouts, 429, 5xx) are retried with a
//! growing pause, up to `voice.max_attempts` tries in all (deliveries to dead transcribers
//! count too); then, and at once for failures that will not pass, the transcript is `failed`
//! with the reason.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::audio::{self, Format};
use super::engine::{self, Clip, Engine, EngineError};
use super::{state, Status, StatusInfo};
use crate::settings::Settings;
use crate::store::transcription::{Job, Outcome};
use crate::store::Store;

/// The transcriber actor; its work runs as one future in its context.
pub struct Transcriber {
    store: Store,
    settings: Arc<Settings>,
    status: Arc<Status>,
    consumer: String,
}

impl Transcriber {
    pub fn new(store: Store, settings: Arc<Settings>, status: Arc<Status>) -> Self {
        let consumer = format!(
            "{}-{}-{}",
            hostname(),
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Transcriber {
            store,
            settings,
            status,
            consumer,
        }
    }

    /// Its name in the consumer group.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into())
}

impl Actor for Transcriber {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let work = Worker {
            store: self.store.clone(),
            settings: self.settings.clone(),
            status: self.status.clone(),
            consumer: self.consumer.clone(),
        };
        ctx.spawn(work.run().into_actor(self).map(|_, _, ctx| ctx.stop()));
    }
}

/// Stops the transcriber and takes it off the live list.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

impl Handler<Stop> for Transcriber {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, _: Stop, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        let consumer = self.consumer.clone();
        Box::pin(
            async move {
                let _ = store.transcriber_gone(&consumer).await;
            }
            .into_actor(self)
            .map(|_, _, ctx| ctx.stop()),
        )
    }
}

struct Worker {
    store: Store,
    settings: Arc<Settings>,
    status: Arc<Status>,
    consumer: String,
}

impl Worker {
    async fn run(self) {
        let v = self.settings.voice.clone();
        self.status.set(|s| s.state = "loading".into());
        let loaded = tokio::task::spawn_blocking(move || engine::from_settings(&v)).await;
        let engine = match loaded {
            Ok(Ok(e)) => e,
            Ok(Err(detail)) => {
                log::warn!("voice: no transcription on this node: {detail}");
                self.status.set(|s| {
                    s.state = state::UNAVAILABLE.into();
                    s.detail = detail;
                });
                return;
            }
            Err(e) => {
                log::error!("voice: loading the engine failed: {e}");
                self.status.set(|s| {
                    s.state = state::UNAVAILABLE.into();
                    s.detail = format!("loading the engine failed: {e}");
                });
                return;
            }
        };
        let mut backoff = Duration::from_millis(200);
        while let Err(e) = self.store.ensure_voice_group().await {
            log::warn!("voice: cannot create the job group yet: {e}");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        self.status.set(|s| {
            s.state = "ready".into();
            s.detail.clear();
            s.engine = engine.name();
        });
        log::info!(
            "voice: transcriber {} ready with {}",
            self.consumer,
            engine.name()
        );
        self.serve(engine.as_ref()).await;
    }

    async fn serve(&self, engine: &dyn Engine) {
        let v = &self.settings.voice;
        let ttl = (v.poll_ms * 3).max(10_000);
        let claim_every = Duration::from_millis((v.claim_after_secs * 1000 / 4).clamp(250, 30_000));
        let mut last_claim: Option<Instant> = None;
        let mut conn = None;
        loop {
            if let Err(e) = self.store.transcriber_heartbeat(&self.consumer, ttl).await {
                log::warn!("voice: heartbeat: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            if last_claim.is_none_or(|t| t.elapsed() >= claim_every) {
                last_claim = Some(Instant::now());
                match self
                    .store
                    .claim_stale_job(&self.consumer, v.claim_after_secs * 1000)
                    .await
                {
                    Ok(Some((job, deliveries))) => {
                        log::info!(
                            "voice: took over job {} of message {} (delivery {deliveries})",
                            job.id,
                            job.message
                        );
                        let tries = job.attempt + (deliveries.saturating_sub(1) as u32);
                        self.process(engine, job, tries).await;
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => log::warn!("voice: claiming stale jobs: {e}"),
                }
            }
            if conn.is_none() {
                match self.store.transcriber_conn(v.poll_ms).await {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        log::warn!("voice: job connection: {e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
            let c = conn.as_mut().expect("set above");
            match self.store.next_job(c, &self.consumer, v.poll_ms).await {
                Ok(Some(job)) => {
                    let tries = job.attempt;
                    self.process(engine, job, tries).await;
                }
                Ok(None) => {}
                Err(e) => {
                    log::warn!("voice: reading jobs: {e}");
                    conn = None;
                    if e.to_string().contains("NOGROUP") {
                        let _ = self.store.ensure_voice_group().await;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// One job; `tries` were made before this one.
    async fn process(&self, engine: &dyn Engine, job: Job, tries: u32) {
        let v = &self.settings.voice;
        let name = engine.name();
        let fail = |error: String| Outcome::Failed {
            error,
            engine: name.clone(),
        };
        match self
            .store
            .transcript_state(&job.channel, &job.message)
            .await
        {
            Ok(Some(s)) if s == state::PENDING => {}
            Ok(_) => {
                // Finished by someone else, or the message is gone: only acknowledge.
                self.finish(&job, &fail(String::new())).await;
                return;
            }
            Err(e) => {
                log::warn!("voice: job {}: {e}", job.id);
                return;
            }
        }
        if tries >= v.max_attempts {
            let why = if job.last_error.is_empty() {
                "its transcriber stopped".to_string()
            } else {
                job.last_error.clone()
            };
            self.finish(&job, &fail(format!("gave up after {tries} tries: {why}")))
                .await;
            return;
        }
        let clip = match self.load_clip(&job).await {
            Ok(c) => c,
            Err(Some(why)) => {
                self.finish(&job, &fail(why)).await;
                return;
            }
            Err(None) => return,
        };
        let started = Instant::now();
        let result = engine.transcribe(&clip).await;
        let took = started.elapsed();
        match result {
            Ok(t) => {
                log::info!(
                    "voice: message {} transcribed by {name} in {} ms ({} ms of audio)",
                    job.message,
                    took.as_millis(),
                    clip.duration_ms()
                );
                self.finish(
                    &job,
                    &Outcome::Done {
                        text: t.text,
                        confidence: t.confidence,
                        engine: name.clone(),
                    },
                )
                .await;
            }
            Err(EngineError::Fatal(e)) => {
                log::warn!("voice: message {}: {e}", job.message);
                self.finish(&job, &fail(e)).await;
            }
            Err(EngineError::Retry(e)) => {
                let tries = tries + 1;
                if tries >= v.max_attempts {
                    log::warn!("voice: message {}: {e}; giving up", job.message);
                    self.finish(&job, &fail(format!("{e} (after {tries} tries)")))
                        .await;
                } else {
                    let pause =
                        Duration::from_millis((v.poll_ms << (tries - 1).min(8)).min(30_000));
                    log::info!(
                        "voice: message {}: {e}; try {} in {} ms",
                        job.message,
                        tries + 1,
                        pause.as_millis()
                    );
                    tokio::time::sleep(pause).await;
                    if let Err(e) = self.store.requeue_job(&job, tries, &e).await {
                        log::warn!("voice: re-queueing job {}: {e}", job.id);
                    }
                }
            }
        }
    }

    /// The job's audio as 16 kHz mono. `Err(Some(why))`: it can never be transcribed;
    /// `Err(None)`: Redis failed, leave the job for later.
    async fn load_clip(&self, job: &Job) -> Result<Clip, Option<String>> {
        let info = match self.store.audio_info(&job.audio).await {
            Ok(Some(i)) => i,
            Ok(None) => return Err(Some("the audio is gone".into())),
            Err(e) => {
                log::warn!("voice: job {}: {e}", job.id);
                return Err(None);
            }
        };
        let bytes = match self.store.audio_bytes(&info).await {
            Ok(Some(b)) => b,
            Ok(None) => return Err(Some("the audio is gone".into())),
            Err(e) => {
                log::warn!("voice: job {}: {e}", job.id);
                return Err(None);
            }
        };
        let format = Format::from_stored(&info.content_type);
        let max = self.settings.voice.max_seconds + 1;
        let decoded = tokio::task::spawn_blocking(move || {
            audio::decode(&bytes, format, max).map(|d| d.speech_samples())
        })
        .await;
        match decoded {
            Ok(Ok(samples)) => Ok(Clip { samples }),
            Ok(Err(e)) => Err(Some(format!("the audio cannot be decoded: {e}"))),
            Err(e) => Err(Some(format!("decoding failed: {e}"))),
        }
    }

    async fn finish(&self, job: &Job, outcome: &Outcome) {
        match self.store.finish_job(job, outcome).await {
            Ok(Some(_)) => {}
            Ok(None) => log::debug!("voice: job {} was already finished", job.id),
            // Left pending: this or another transcriber takes it again after the claim time.
            Err(e) => log::warn!("voice: storing the result of job {}: {e}", job.id),
        }
    }
}

/// The node's voice status before its transcriber (if any) reports.
pub fn initial_status(settings: &Settings) -> StatusInfo {
    let v = &settings.voice;
    let engine = engine::configured_name(v);
    if !v.enabled {
        return StatusInfo {
            engine,
            state: "disabled".into(),
            detail: "voice.enabled = false".into(),
            transcriber: false,
        };
    }
    if !v.transcriber {
        return StatusInfo {
            engine,
            state: "off".into(),
            detail: "voice.transcriber = false: transcripts come from other nodes' transcribers"
                .into(),
            transcriber: false,
        };
    }
    StatusInfo {
        engine,
        state: "loading".into(),
        detail: String::new(),
        transcriber: true,
    }
}

/// Starts this node's transcriber when the settings ask for one.
pub fn start(store: &Store, settings: &Arc<Settings>) -> (Arc<Status>, Option<Addr<Transcriber>>) {
    let status = Arc::new(Status::new(initial_status(settings)));
    if !(settings.voice.enabled && settings.voice.transcriber) {
        return (status, None);
    }
    let addr = Transcriber::new(store.clone(), settings.clone(), status.clone()).start();
    (status, Some(addr))
}

/// `chatnode transcriber`: a process that only transcribes, for the Redis in `redis.url`.
pub fn run_command(settings: Settings) -> ExitCode {
    if settings.redis.url.is_empty() {
        eprintln!("chatnode transcriber: set redis.url (CHATNODE__REDIS__URL) to the nodes' Redis");
        return ExitCode::from(2);
    }
    let mut settings = settings;
    settings.voice.enabled = true;
    settings.voice.transcriber = true;
    let settings = Arc::new(settings);
    let result = actix_rt::System::new().block_on(async move {
        let store = Store::connect(&settings.redis.url, settings.clone()).await?;
        let (status, addr) = start(&store, &settings);
        let addr = addr.ok_or("the transcriber did not start")?;
        loop {
            let s = status.get();
            match s.state.as_str() {
                "loading" => tokio::time::sleep(Duration::from_millis(200)).await,
                "ready" => {
                    log::info!("chatnode transcriber: working with {}", s.engine);
                    break;
                }
                _ => return Err(format!("no engine: {}", s.detail)),
            }
        }
        crate::shutdown::signal().await;
        log::info!("chatnode transcriber: stopping");
        let _ = tokio::time::timeout(Duration::from_secs(5), addr.send(Stop)).await;
        Ok::<_, String>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatnode transcriber: {e}");
            ExitCode::FAILURE
        }
    }
}
