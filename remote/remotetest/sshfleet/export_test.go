package sshfleet

// Alive is alive, for the external tests.
var Alive = alive
