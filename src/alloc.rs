//! A global allocator that counts, per thread, the bytes a thread holds.
//!
//! Rhai's size limits count per container and skip the check on assignment by
//! key, so a hostile script can reach gigabytes while staying within them. The
//! sandbox runs each script on its own thread and checks this thread's count
//! from Rhai's `on_progress` hook, which fires between operations: the memory a
//! script may take is then bounded by the budget plus what a single operation
//! allocates (itself bounded by the string/array/map limits).
//!
//! The counter is a `const`-initialised thread-local `Cell`, which needs no
//! destructor and no lazy initialisation, so touching it from inside the
//! allocator cannot recurse into the allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Wraps the system allocator, adding and subtracting sizes on the current
/// thread's counter.
pub struct CountingAllocator;

thread_local! {
    /// Bytes allocated minus bytes freed on this thread. It goes negative when
    /// a thread frees what another thread allocated; only differences matter.
    static THREAD_BALANCE: Cell<isize> = const { Cell::new(0) };
}

#[inline]
fn adjust(delta: isize) {
    // `try_with` fails only while the thread is being torn down; the count
    // does not matter then.
    let _ = THREAD_BALANCE.try_with(|balance| balance.set(balance.get().wrapping_add(delta)));
}

// SAFETY: every method forwards to `System` with the same arguments; the
// counting does not allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc(layout);
        if !ptr.is_null() {
            adjust(layout.size() as isize);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc_zeroed(layout);
        if !ptr.is_null() {
            adjust(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        adjust(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_ptr = System.realloc(ptr, layout, new_size);
        if !new_ptr.is_null() {
            adjust(new_size as isize - layout.size() as isize);
        }
        new_ptr
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// The current thread's balance of allocated minus freed bytes.
pub fn thread_balance() -> isize {
    THREAD_BALANCE.try_with(Cell::get).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_this_thread_holds() {
        let before = thread_balance();
        let big = vec![0u8; 10 << 20];
        let during = thread_balance();
        assert!(during - before >= 10 << 20, "{} -> {}", before, during);
        drop(big);
        assert!(thread_balance() - before < 1 << 20);
    }

    #[test]
    fn other_threads_do_not_count_here() {
        let before = thread_balance();
        std::thread::spawn(|| {
            let v = vec![1u8; 20 << 20];
            std::hint::black_box(&v);
        })
        .join()
        .expect("thread ran");
        assert!(thread_balance() - before < 1 << 20);
    }
}
