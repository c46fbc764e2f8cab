package qzst

// benchDir holds the benchmark's generated book file; TestMain removes it.
var benchDir string
