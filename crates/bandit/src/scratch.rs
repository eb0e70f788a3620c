//! A small buffer on the stack for up to 64 values, on the heap beyond:
//! per-decision scores without an allocation in the common case.

use std::ops::{Deref, DerefMut};

const STACK: usize = 64;

// The stack variant is large on purpose: it lives for one decision, and it
// is what spares the hot path an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Scratch {
    Stack([f64; STACK], usize),
    Heap(Vec<f64>),
}

impl Scratch {
    pub(crate) fn zeros(n: usize) -> Self {
        if n <= STACK {
            Scratch::Stack([0.0; STACK], n)
        } else {
            Scratch::Heap(vec![0.0; n])
        }
    }
}

impl Deref for Scratch {
    type Target = [f64];
    fn deref(&self) -> &[f64] {
        match self {
            Scratch::Stack(a, n) => &a[..*n],
            Scratch::Heap(v) => v,
        }
    }
}

impl DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f64] {
        match self {
            Scratch::Stack(a, n) => &mut a[..*n],
            Scratch::Heap(v) => v,
        }
    }
}
