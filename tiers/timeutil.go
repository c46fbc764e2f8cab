package tiers

import (
	"time"

	"golang.org/x/sys/unix"
)

type timeT = time.Time

func timeOf(ts unix.Timespec) time.Time { return time.Unix(ts.Sec, ts.Nsec) }
