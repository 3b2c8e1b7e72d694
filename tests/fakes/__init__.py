"""Stand-ins for outside services that tests drive over real sockets on 127.0.0.1."""
