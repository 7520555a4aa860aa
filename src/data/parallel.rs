//! Filling a buffer of fixed-size items on all cores: decoding and resizing images bound loading on a CPU core
//! (tens of µs an image, where a GPU scores a triplet in about one).

use crate::{Error, Result};

/// Fills `out`, `item_len` bytes per item, item i by `fill(i, its bytes)`, in contiguous runs of items, one thread
/// per run and at least `min_per_thread` items per thread (below that a thread costs more than it saves). The
/// bytes, and which item's error is returned (the first in order), do not depend on the number of threads.
pub(super) fn fill_items(
    out: &mut [u8],
    item_len: usize,
    min_per_thread: usize,
    fill: impl Fn(usize, &mut [u8]) -> Result<()> + Sync,
) -> Result<()> {
    if item_len == 0 {
        return Ok(());
    }
    let items = out.len() / item_len;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.div_ceil(min_per_thread.max(1)))
        .max(1);
    let per = items.div_ceil(threads).max(1);
    let fill = &fill;
    std::thread::scope(|scope| {
        let runs: Vec<_> = out
            .chunks_mut(per * item_len)
            .enumerate()
            .map(|(r, run)| {
                scope.spawn(move || {
                    run.chunks_exact_mut(item_len)
                        .enumerate()
                        .try_for_each(|(j, slot)| fill(r * per + j, slot))
                })
            })
            .collect();
        // In order, so the first run's error wins; the scope joins any run left.
        runs.into_iter().try_for_each(|run| {
            run.join()
                .unwrap_or_else(|_| Err(Error::msg("an image loading thread panicked")))
        })
    })
}
