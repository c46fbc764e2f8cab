package exsim

import "errors"

// Sentinel errors.
var (
	ErrNoMessages   = errors.New("capture has no stream messages")
	ErrBadFrame     = errors.New("invalid websocket frame from client")
	ErrNotWebsocket = errors.New("not a websocket upgrade")
)
