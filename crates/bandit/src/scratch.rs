//! A small buffer on the stack for up to `N` values (64 unless given), on
//! the heap beyond: per-decision scores without an allocation in the common
//! case.

use std::ops::{Deref, DerefMut};

// The stack variant is large on purpose: it lives for one decision, and it
// is what spares the hot path an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Scratch<const N: usize = 64> {
    Stack([f64; N], usize),
    Heap(Vec<f64>),
}

impl<const N: usize> Scratch<N> {
    pub(crate) fn zeros(n: usize) -> Self {
        if n <= N {
            Scratch::Stack([0.0; N], n)
        } else {
            Scratch::Heap(vec![0.0; n])
        }
    }
}

impl<const N: usize> Deref for Scratch<N> {
    type Target = [f64];
    fn deref(&self) -> &[f64] {
        match self {
            Scratch::Stack(a, n) => &a[..*n],
            Scratch::Heap(v) => v,
        }
    }
}

impl<const N: usize> DerefMut for Scratch<N> {
    fn deref_mut(&mut self) -> &mut [f64] {
        match self {
            Scratch::Stack(a, n) => &mut a[..*n],
            Scratch::Heap(v) => v,
        }
    }
}

/// Runs `f` on `n` zeros: on the stack in the smallest of 16, 64 or 256
/// values that holds them (zeroing only that much: a decision at small `d`
/// should not clear kilobytes), on the heap beyond.
#[inline]
pub(crate) fn with_zeros<R>(n: usize, f: impl FnOnce(&mut [f64]) -> R) -> R {
    if n <= 16 {
        f(&mut [0.0; 16][..n])
    } else if n <= 64 {
        f(&mut [0.0; 64][..n])
    } else if n <= 256 {
        f(&mut [0.0; 256][..n])
    } else {
        f(&mut vec![0.0; n])
    }
}
