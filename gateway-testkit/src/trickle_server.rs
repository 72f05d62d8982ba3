//! The trickle server double. (being written)
