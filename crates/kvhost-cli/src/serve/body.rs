//! Bodies between the client and the component.
//!
//! [`RequestBody`]: what a component reads, at most `--max-request-body` bytes. A request
//! whose `Content-Length` is over the limit never reaches the component (413, see
//! [`super::request`]); a streamed (chunked) body is counted as it is read, and the frame
//! that passes the limit is an error instead (`HTTP-request-body-size` to the component).
//!
//! [`ResponseBody`]: what the component writes, noting whether the client hung up before its
//! end, so that the component's failure to write to a closed stream is logged as the hang-up
//! it is, not as a component failure.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::Error;

/// `inner`, cut off with an error once more than `max` bytes have been read.
pub struct RequestBody<B> {
    inner: B,
    read: u64,
    max: u64,
}

impl<B> RequestBody<B> {
    /// `inner`, allowed `max` bytes.
    pub fn new(inner: B, max: u64) -> Self {
        RequestBody {
            inner,
            read: 0,
            max,
        }
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Error>,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if self.read > self.max {
            return Poll::Ready(None);
        }
        let frame = match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            Some(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
            None => return Poll::Ready(None),
        };
        if let Some(data) = frame.data_ref() {
            self.read = self.read.saturating_add(data.len() as u64);
            if self.read > self.max {
                return Poll::Ready(Some(Err(Error::HttpRequestBodySize(Some(self.read)))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.read > self.max || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body on its way to the client. Sets `hung_up` if it is dropped before its end
/// (hyper drops it when the client goes away) and holds `guard` until then.
///
/// Invariant: `hung_up` is set before the component's stream is closed (this value's `drop`
/// runs before its fields'), so a write failure the component sees afterwards finds it set.
pub struct ResponseBody<G> {
    body: HyperOutgoingBody,
    ended: bool,
    hung_up: Arc<AtomicBool>,
    _guard: G,
}

impl<G> ResponseBody<G> {
    /// `body`, reporting a hang-up to `hung_up`, holding `guard`.
    pub fn new(body: HyperOutgoingBody, hung_up: Arc<AtomicBool>, guard: G) -> Self {
        ResponseBody {
            body,
            ended: false,
            hung_up,
            _guard: guard,
        }
    }
}

impl<G: Unpin> Body for ResponseBody<G> {
    type Data = Bytes;
    type Error = <HyperOutgoingBody as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        if !matches!(frame, Some(Ok(_))) {
            self.ended = true;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl<G> Drop for ResponseBody<G> {
    fn drop(&mut self) {
        if !self.ended && !self.body.is_end_stream() {
            self.hung_up.store(true, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use http_body_util::BodyExt;

    use super::*;

    /// A body of data frames of the given sizes.
    struct Chunks(VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
            Poll::Ready(self.0.pop_front().map(|data| Ok(Frame::data(data))))
        }
    }

    async fn read_all(sizes: &[usize], max: u64) -> Result<usize, Error> {
        let chunks = sizes.iter().map(|&size| Bytes::from(vec![b'x'; size]));
        let mut body = RequestBody::new(Chunks(chunks.collect()), max);
        let mut total = 0;
        while let Some(frame) = body.frame().await {
            total += frame?.into_data().map_or(0, |data| data.len());
        }
        Ok(total)
    }

    #[tokio::test]
    async fn a_body_up_to_the_limit_passes_whole() {
        assert_eq!(read_all(&[400, 400, 224], 1024).await.unwrap(), 1024);
    }

    #[tokio::test]
    async fn the_frame_past_the_limit_is_an_error() {
        let read = read_all(&[400, 400, 225, 10], 1024).await;
        assert!(
            matches!(read, Err(Error::HttpRequestBodySize(Some(1025)))),
            "{read:?}"
        );
    }
}
