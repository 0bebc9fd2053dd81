"""ESME's wire and the sockets: the protocol's frames, WebSockets, REST calls, syscalls."""
