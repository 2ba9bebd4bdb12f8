//! SFD98 dust-map loading (owned by the dust helper).
