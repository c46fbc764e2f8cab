//go:build !race

package fsmount

const raceEnabled = false
