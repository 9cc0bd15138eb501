package main

import "github.com/zmyorg/zmy-responder/receiver"

// newRunbook builds the detect prober and the remediate engine behind the API.
//
// TODO(wiring): set it to a function that calls detect.NewProber and remediate.NewEngine and
// returns the engine (adapted to receiver.Runbook) with engine.Run as the loop. Until then the
// daemon journals every alert and the runbook endpoints answer 503.
var newRunbook = (receiver.Options{}).NewRunbook
