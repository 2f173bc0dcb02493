use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

/// Manages a collection of threads.
///
/// A new thread is created every time all the existing threads are full.
/// Any idle thread will automatically die after a few seconds.
pub struct TaskPool {
    sharing: Arc<Sharing>,
}

struct Sharing {
    // list of the tasks to be done by worker threads
    todo: Mutex<VecDeque<Box<dyn FnMut() + Send>>>,

    // condvar that will be notified whenever a task is added to `todo`
    condvar: Condvar,

    // number of total worker threads running
    active_tasks: AtomicUsize,

    // number of idle worker threads
    waiting_tasks: AtomicUsize,

    // Patched (see PATCH.md): threads spawned and not yet ended, counted when spawned (not when
    // they start running), and the most there may be.
    spawned: AtomicUsize,
    cap: Option<usize>,
}

/// Minimum number of active threads.
static MIN_THREADS: usize = 4;

struct Registration<'a> {
    nb: &'a AtomicUsize,
}

impl<'a> Registration<'a> {
    fn new(nb: &'a AtomicUsize) -> Registration<'a> {
        nb.fetch_add(1, Ordering::Release);
        Registration { nb }
    }
}

impl<'a> Drop for Registration<'a> {
    fn drop(&mut self) {
        self.nb.fetch_sub(1, Ordering::Release);
    }
}

impl TaskPool {
    pub fn new() -> TaskPool {
        TaskPool::with_cap(None)
    }

    /// Patched (see PATCH.md): at most `cap` threads; a task beyond them waits in the queue for a
    /// thread to be free, as does one whose thread the system refused to create.
    pub fn with_cap(cap: Option<usize>) -> TaskPool {
        let pool = TaskPool {
            sharing: Arc::new(Sharing {
                todo: Mutex::new(VecDeque::new()),
                condvar: Condvar::new(),
                active_tasks: AtomicUsize::new(0),
                waiting_tasks: AtomicUsize::new(0),
                spawned: AtomicUsize::new(0),
                cap: cap.map(|c| c.max(MIN_THREADS)),
            }),
        };

        for _ in 0..MIN_THREADS {
            let _ = pool.add_thread(None);
        }

        pool
    }

    /// Executes a function in a thread.
    /// If no thread is available, spawns a new one.
    pub fn spawn(&self, code: Box<dyn FnMut() + Send>) {
        let mut queue = self.sharing.todo.lock().unwrap();

        // Patched (see PATCH.md): an idle thread that has been woken for a task still counts in
        // `waiting_tasks` until it can take the lock, which this function holds. Checking for
        // "any idle thread" let a burst of connections queue behind one or two woken threads;
        // a task is queued only while there are more idle threads than tasks already queued.
        let full = self
            .sharing
            .cap
            .is_some_and(|cap| self.sharing.spawned.load(Ordering::Acquire) >= cap);
        if self.sharing.waiting_tasks.load(Ordering::Acquire) > queue.len() || full {
            queue.push_back(code);
            self.sharing.condvar.notify_one();
        } else if let Err(code) = self.add_thread(Some(code)) {
            // No thread to be had: the task waits for one that is free.
            if let Some(code) = code {
                queue.push_back(code);
            }
        }
    }

    /// Spawn a thread (with `initial_fn` to run first); the system's refusal gives the task back.
    fn add_thread(
        &self,
        initial_fn: Option<Box<dyn FnMut() + Send>>,
    ) -> Result<(), Option<Box<dyn FnMut() + Send>>> {
        let sharing = self.sharing.clone();
        // Handed back if the thread cannot be made.
        let task = Arc::new(Mutex::new(initial_fn));
        let first = task.clone();
        self.sharing.spawned.fetch_add(1, Ordering::AcqRel);
        let spawned = thread::Builder::new().spawn(move || {
            let sharing = sharing;
            let _spawned_guard = Spawned(&sharing.spawned);
            let _active_guard = Registration::new(&sharing.active_tasks);
            let initial_fn = first.lock().ok().and_then(|mut f| f.take());

            if let Some(mut f) = initial_fn {
                f();
            }

            loop {
                let mut task: Box<dyn FnMut() + Send> = {
                    let mut todo = sharing.todo.lock().unwrap();

                    let task;
                    loop {
                        if let Some(poped_task) = todo.pop_front() {
                            task = poped_task;
                            break;
                        }
                        let _waiting_guard = Registration::new(&sharing.waiting_tasks);

                        let received =
                            if sharing.active_tasks.load(Ordering::Acquire) <= MIN_THREADS {
                                todo = sharing.condvar.wait(todo).unwrap();
                                true
                            } else {
                                let (new_lock, waitres) = sharing
                                    .condvar
                                    .wait_timeout(todo, Duration::from_millis(5000))
                                    .unwrap();
                                todo = new_lock;
                                !waitres.timed_out()
                            };

                        if !received && todo.is_empty() {
                            return;
                        }
                    }

                    task
                };

                task();
            }
        });
        if spawned.is_err() {
            self.sharing.spawned.fetch_sub(1, Ordering::AcqRel);
            return Err(task.lock().ok().and_then(|mut f| f.take()));
        }
        Ok(())
    }
}

/// Counts a spawned thread out when it ends.
struct Spawned<'a>(&'a AtomicUsize);

impl Drop for Spawned<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for TaskPool {
    fn drop(&mut self) {
        self.sharing
            .active_tasks
            .store(999_999_999, Ordering::Release);
        self.sharing.condvar.notify_all();
    }
}
