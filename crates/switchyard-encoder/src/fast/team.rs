//! A small team of helper threads for the fast encoder. A forward pass has a dozen short parallel steps (two
//! per layer); a general pool parks its workers between them and pays a futex wake-up each time. Here helpers
//! keep spinning for a moment after each task, so during a pass a step is handed over in well under a
//! microsecond, and they park only when the encoder goes idle.

use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an idle helper spins before it parks.
const SPIN: Duration = Duration::from_micros(100);

/// One unit of work: runs anywhere, returns its output.
pub type Task = Box<dyn FnOnce() -> Vec<f32> + Send + 'static>;

struct Job {
    index: usize,
    task: Task,
    reply: Sender<(usize, Vec<f32>)>,
}

/// The calling thread plus `threads - 1` helpers.
pub struct Team {
    queue: Option<Sender<Job>>,
    threads: usize,
}

impl std::fmt::Debug for Team {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Team").field("threads", &self.threads).finish()
    }
}

impl Team {
    /// A team of `threads` (the caller counts as one; helpers that cannot be started are done without).
    pub fn new(threads: usize) -> Self {
        if threads <= 1 {
            return Self { queue: None, threads: 1 };
        }
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 1;
        for i in 1..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("switchyard-encoder-{i}")).spawn(move || help(&rx));
            if spawned.is_ok() {
                started += 1;
            }
        }
        Self { queue: (started > 1).then_some(tx), threads: started }
    }

    /// Threads working on a pass, the caller included.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs the tasks, the first on the calling thread and the others on helpers, and returns their outputs
    /// in order.
    pub fn run(&self, tasks: Vec<Task>) -> Result<Vec<Vec<f32>>, String> {
        let n = tasks.len();
        let mut results = vec![Vec::new(); n];
        let (reply, answers) = mpsc::channel();
        let mut local = Vec::new();
        for (index, task) in tasks.into_iter().enumerate() {
            match (&self.queue, index) {
                (Some(queue), i) if i > 0 => {
                    if let Err(mpsc::SendError(job)) = queue.send(Job { index, task, reply: reply.clone() }) {
                        local.push((job.index, job.task));
                    }
                }
                _ => local.push((index, task)),
            }
        }
        drop(reply);
        let remote = n - local.len();
        for (index, task) in local {
            results[index] = task();
        }
        for _ in 0..remote {
            let (index, output) = spin_recv(&answers).ok_or("an encoder helper thread stopped")?;
            results[index] = output;
        }
        Ok(results)
    }
}

/// Receives, spinning for up to [`SPIN`] before blocking; `None` when every sender is gone.
fn spin_recv<T>(rx: &Receiver<T>) -> Option<T> {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        match rx.try_recv() {
            Ok(v) => return Some(v),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {
                spins = spins.wrapping_add(1);
                // Reading the clock costs more than a spin; look at it now and then.
                if spins.is_multiple_of(64) && start.elapsed() >= SPIN {
                    return rx.recv().ok();
                }
                std::hint::spin_loop();
            }
        }
    }
}

fn help(queue: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let Ok(rx) = queue.lock() else { return };
            spin_recv(&rx)
        };
        let Some(job) = job else { return };
        let output = (job.task)();
        let _ = job.reply.send((job.index, output));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_run_once_each_and_come_back_in_order() {
        for threads in [1, 2, 4] {
            let team = Team::new(threads);
            for round in 0..50 {
                let tasks: Vec<Task> =
                    (0..7).map(|i| Box::new(move || vec![(round * 10 + i) as f32]) as Task).collect();
                let out = team.run(tasks).unwrap();
                let want: Vec<Vec<f32>> = (0..7).map(|i| vec![(round * 10 + i) as f32]).collect();
                assert_eq!(out, want, "{threads} threads, round {round}");
            }
        }
    }

    #[test]
    fn concurrent_callers_get_their_own_results() {
        let team = Arc::new(Team::new(3));
        let handles: Vec<_> = (0..4)
            .map(|c| {
                let team = team.clone();
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        let tasks: Vec<Task> =
                            (0..5).map(|i| Box::new(move || vec![(c * 100 + i) as f32]) as Task).collect();
                        let out = team.run(tasks).unwrap();
                        assert!(out.iter().enumerate().all(|(i, v)| v == &[(c * 100 + i) as f32]));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
}
