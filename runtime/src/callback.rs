//! wgpu's completion callbacks (`map_async`, `on_submitted_work_done`) as futures.
//!
//! [`callback_future`] returns a sender to move into the callback and a future that resolves
//! with the value the callback sends. In a browser the callback runs when the JavaScript event
//! loop delivers the WebGPU promise, so awaiting the future yields to the browser; natively the
//! callback runs inside `Device::poll`, which the session calls before awaiting.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

struct Shared<T> {
    value: Option<T>,
    waker: Option<Waker>,
    /// The sender was dropped without sending (the callback will never run).
    closed: bool,
}

/// The sending half: call [`CallbackSender::send`] from the wgpu callback.
pub(crate) struct CallbackSender<T>(Arc<Mutex<Shared<T>>>);

/// Resolves to `Some(value)` once the callback has sent it, or `None` if the sender was dropped
/// without sending.
pub(crate) struct CallbackFuture<T>(Arc<Mutex<Shared<T>>>);

/// A sender for a wgpu callback and the future that receives its value.
pub(crate) fn callback_future<T>() -> (CallbackSender<T>, CallbackFuture<T>) {
    let shared = Arc::new(Mutex::new(Shared {
        value: None,
        waker: None,
        closed: false,
    }));
    (CallbackSender(shared.clone()), CallbackFuture(shared))
}

fn lock<T>(m: &Mutex<Shared<T>>) -> std::sync::MutexGuard<'_, Shared<T>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<T> CallbackSender<T> {
    /// Delivers `value` and wakes the waiting future.
    pub(crate) fn send(self, value: T) {
        let waker = {
            let mut s = lock(&self.0);
            s.value = Some(value);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Drop for CallbackSender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut s = lock(&self.0);
            s.closed = true;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Future for CallbackFuture<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut s = lock(&self.0);
        if let Some(v) = s.value.take() {
            return Poll::Ready(Some(v));
        }
        if s.closed {
            return Poll::Ready(None);
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_the_sent_value_even_when_sent_before_the_first_poll() {
        let (tx, rx) = callback_future();
        tx.send(7);
        assert_eq!(pollster::block_on(rx), Some(7));
    }

    #[test]
    fn a_sender_dropped_without_sending_resolves_to_none() {
        let (tx, rx) = callback_future::<u8>();
        let t = std::thread::spawn(move || drop(tx));
        assert_eq!(pollster::block_on(rx), None);
        t.join().unwrap();
    }

    #[test]
    fn wakes_a_future_waiting_on_another_thread() {
        let (tx, rx) = callback_future();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            tx.send("done");
        });
        assert_eq!(pollster::block_on(rx), Some("done"));
        t.join().unwrap();
    }
}
