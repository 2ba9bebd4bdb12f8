//! TODO(kernel vdisp): not yet implemented.
