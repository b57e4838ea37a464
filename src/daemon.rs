//! The daemon: tasks, graceful shutdown, systemd notifications.
