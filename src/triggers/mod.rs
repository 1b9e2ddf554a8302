//! What starts builds besides a person: time schedules and commits seen by
//! polling (pushes announced by forges poll at once, through the HTTP layer).
//! Each is one pass plus a loop; tests call the pass.

pub mod poll;
pub mod time;
