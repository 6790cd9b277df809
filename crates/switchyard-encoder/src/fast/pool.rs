//! Reused activation buffers. A pass allocates a few buffers per matmul; at batch sizes where they exceed
//! the allocator's mmap threshold, fresh ones arrive as zero pages and every page faults on first touch
//! (hundreds of thousands of faults a second). Buffers go back to a per-thread pool instead.

use std::cell::RefCell;

/// Buffers a thread keeps.
const KEEP: usize = 16;

thread_local! {
    static POOL: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with room for at least `capacity` values (reused if the pool has one big enough).
pub fn take(capacity: usize) -> Vec<f32> {
    let reused = POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let best = pool.iter().enumerate().filter(|(_, b)| b.capacity() >= capacity).min_by_key(|(_, b)| b.capacity());
        let index = best.map(|(i, _)| i).or_else(|| (!pool.is_empty()).then_some(0))?;
        Some(pool.swap_remove(index))
    });
    let mut buffer = reused.unwrap_or_default();
    buffer.clear();
    buffer.reserve(capacity);
    buffer
}

/// Returns a buffer to this thread's pool.
pub fn give(buffer: Vec<f32>) {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < KEEP {
            pool.push(buffer);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_empty() {
        let mut a = take(1000);
        a.extend([1.0; 1000]);
        let address = a.as_ptr();
        give(a);
        let b = take(500);
        assert!(b.is_empty() && b.capacity() >= 1000);
        assert_eq!(b.as_ptr(), address);
        give(b);
        let c = take(10_000);
        assert!(c.capacity() >= 10_000);
    }
}
