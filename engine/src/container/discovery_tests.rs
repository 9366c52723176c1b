//! Tests of discovery's plumbing that need no runtime: a Docker call that never
//! answers gives way to the shutdown signal.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};

use tokio::sync::watch;

use crate::container::discovery::or_shutdown;
use crate::rt::BoxFuture;

#[test]
fn a_docker_call_that_never_answers_gives_way_to_shutdown() {
    let (stop, mut shutdown) = watch::channel(false);
    let never: BoxFuture<u32> = Box::pin(std::future::pending());
    let mut call = pin!(or_shutdown(&mut shutdown, never));
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    assert_eq!(call.as_mut().poll(&mut cx), Poll::Pending);
    stop.send(true).unwrap();
    assert_eq!(call.as_mut().poll(&mut cx), Poll::Ready(None));
}

#[test]
fn an_answer_that_comes_first_is_returned() {
    let (_stop, mut shutdown) = watch::channel(false);
    let answer: BoxFuture<u32> = Box::pin(std::future::ready(7));
    let mut call = pin!(or_shutdown(&mut shutdown, answer));
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    assert_eq!(call.as_mut().poll(&mut cx), Poll::Ready(Some(7)));
}
