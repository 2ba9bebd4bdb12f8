//! TODO(kernel rebin): not yet implemented.
