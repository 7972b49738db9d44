//! The training thread of a slot: one trainer-core [`Pack`] that jobs join and leave between
//! steps (continuous batching).
//!
//! Each job's async side (`job.rs`) hands its trainer over as a [`Joining`] and then only talks
//! to it through the job's event channel and stop flag, exactly as it would to a network trained
//! alone: a pack of one *is* a network trained alone (trainer-core has one step code path). A
//! network leaves the pack when it finishes, diverges or is stopped; its `Done` event then goes
//! to its own job, and the pack goes on with the others.
//!
//! A panic inside a pack step leaves every member in an unknown state, so each of them fails
//! (its job's attempt counts, the coordinator re-queues it) and the thread starts a new, empty
//! pack.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

use burn::tensor::Device;
use tokio::sync::mpsc::UnboundedSender;
use trainer_core::{Checkpoint, Pack, TrainConfig, Trainer};

use crate::observer::{ChannelObserver, Control, Event};

/// Test hook (`tests/pack_faults.rs`): while it holds K > 0, the next step of a pack of at
/// least K networks panics, as a bug in a step would (inside the step's `catch_unwind`), and the
/// hook goes back to 0. It is 0 — never — unless a test in this process sets it: nothing outside
/// the process (no flag, no environment variable) can make a worker panic.
#[doc(hidden)]
pub static PANIC_NEXT_STEP_OF_PACK: AtomicUsize = AtomicUsize::new(0);

/// Panics if [`PANIC_NEXT_STEP_OF_PACK`] asks for it for a pack of `networks`.
fn injected_fault(networks: usize) {
    let at = PANIC_NEXT_STEP_OF_PACK.load(Ordering::Relaxed);
    if at > 0
        && networks >= at
        && PANIC_NEXT_STEP_OF_PACK
            .compare_exchange(at, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        panic!("injected fault: a step of a pack of {networks} networks");
    }
}

/// How a job starts: from scratch, or from its last checkpoint.
pub enum Start {
    Fresh(Box<TrainConfig>),
    Resume(Box<Checkpoint>),
}

/// A job handing its network to the training thread.
pub struct Joining {
    pub job_id: i64,
    pub start: Start,
    /// Where the job's metrics, checkpoints and final `Done` go.
    pub events: UnboundedSender<Event>,
    pub control: Arc<Control>,
}

/// The sending end of a slot's training thread. The thread ends when every `PackHost` clone is
/// dropped and its pack is empty.
#[derive(Clone)]
pub struct PackHost {
    joins: Sender<Joining>,
}

impl PackHost {
    /// Starts the training thread of slot `slot` on `device`.
    pub fn spawn(device: Device, slot: usize) -> std::io::Result<PackHost> {
        let (joins, waiting) = channel();
        std::thread::Builder::new()
            .name(format!("train-slot-{slot}"))
            .spawn(move || host(&device, &waiting))?;
        Ok(PackHost { joins })
    }

    /// Hands a network to the training thread; it joins the pack before the next step. If the
    /// thread is gone, `joining` is dropped with its event sender, which the job sees as a
    /// closed channel.
    pub fn join(&self, joining: Joining) {
        if let Err(e) = self.joins.send(joining) {
            tracing::error!(
                job_id = e.0.job_id,
                "the training thread of this slot is gone; the job cannot run"
            );
        }
    }
}

/// The training thread: admits waiting networks between steps, steps the pack, hands each
/// network that left its result.
fn host(device: &Device, waiting: &Receiver<Joining>) {
    let mut pack: Pack<ChannelObserver> = Pack::new();
    loop {
        if pack.is_empty() {
            // Nothing to train: sleep until a job arrives (or the slot is gone).
            match waiting.recv() {
                Ok(joining) => admit(&mut pack, joining, device),
                Err(_) => return,
            }
        }
        while let Ok(joining) = waiting.try_recv() {
            admit(&mut pack, joining, device);
        }
        if pack.is_empty() {
            continue;
        }
        let networks = pack.len();
        match catch_unwind(AssertUnwindSafe(|| {
            injected_fault(networks);
            pack.step()
        })) {
            Ok(left) => {
                for network in left {
                    let done = Event::Done(Ok(Box::new(network.result)));
                    // A closed channel: the job gave up on this network already.
                    let _ = network.observer.events.send(done);
                }
            }
            Err(panic) => {
                let message = format!("the trainer panicked: {}", panic_message(&*panic));
                let ids: Vec<u64> = pack.members().iter().map(|m| m.id).collect();
                tracing::error!(
                    networks = ids.len(),
                    "{message}; failing every job of the pack"
                );
                for id in ids {
                    if let Some(member) = pack.remove(id) {
                        let _ = member
                            .observer
                            .events
                            .send(Event::Done(Err(message.clone())));
                    }
                }
                pack = Pack::new();
            }
        }
    }
}

/// Builds the network of `joining` and adds it to the pack, or tells its job why it cannot run.
fn admit(pack: &mut Pack<ChannelObserver>, joining: Joining, device: &Device) {
    let Joining {
        job_id,
        start,
        events,
        control,
    } = joining;
    let built = catch_unwind(AssertUnwindSafe(|| match start {
        Start::Fresh(config) => Trainer::new(*config, device),
        Start::Resume(checkpoint) => Trainer::resume(&checkpoint, device),
    }));
    let trainer = match built {
        Ok(Ok(trainer)) => trainer,
        Ok(Err(e)) => {
            let _ = events.send(Event::Done(Err(e.to_string())));
            return;
        }
        Err(panic) => {
            let message = format!("the trainer panicked: {}", panic_message(&*panic));
            let _ = events.send(Event::Done(Err(message)));
            return;
        }
    };
    let observer = ChannelObserver {
        events: events.clone(),
        control,
    };
    if let Err(e) = pack.join(trainer, observer) {
        // The coordinator leases one pack key per pack, so this means a job whose stored key
        // disagrees with its config: fail it rather than train it in the wrong company.
        tracing::error!(job_id, "cannot join the pack: {e}");
        let _ = events.send(Event::Done(Err(format!("cannot join the pack: {e}"))));
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}
