//! What starts builds besides a person: time schedules, and (coming) commits
//! seen by polling and pushes announced by forges.

pub mod hooks;
pub mod poll;
pub mod time;
