//! Deploy over SSH (russh + russh-sftp).
