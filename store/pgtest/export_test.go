package pgtest

// SweepStaleForTest exposes sweepStale.
func SweepStaleForTest(base string) { sweepStale(base) }
