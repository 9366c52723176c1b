//! capture-sim (in progress)
