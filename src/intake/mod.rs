//! The intake pipeline over one incoming message: stages in order, one transaction.
