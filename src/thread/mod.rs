//! The pure thread domain: ids, statuses, transitions, mail commands, authorization, quoting.
