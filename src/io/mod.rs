//! Input and output: FITS readers and writers, configuration files.
//!
//! Every error names the file and, where known, the HDU, column or target.

use std::path::{Path, PathBuf};

pub mod desi;
pub mod emlines;
pub mod fits;
pub mod generic;
pub mod photometry;
pub mod quasarnet;
pub mod sfd;
pub mod spectra;
pub mod stack;
pub mod templates;

/// An input/output error that names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// A file (or one of its HDUs/columns) could not be read or is malformed.
    #[error("{path}: {msg}")]
    Input {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong, in words a user can act on.
        msg: String,
    },
    /// An output file could not be written.
    #[error("{path}: cannot write output: {msg}")]
    Output {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        msg: String,
    },
}

impl IoError {
    /// An input error for `path` with message `msg`.
    pub fn input(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        IoError::Input {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }
    /// An output error for `path` with message `msg`.
    pub fn output(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        IoError::Output {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }
}
