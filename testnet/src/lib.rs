//! Test support: a network namespace with a TAP device and stock peer
//! tools in it, removed when dropped (also on panic).
