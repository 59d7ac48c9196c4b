package main

import (
	"os"
	"testing"

	"github.com/wa2genesys/connectorcache/internal/redistest"
)

// runMainEnv makes the test binary run the connector's main instead of the
// tests, so that a test can start the real command as a subprocess.
const runMainEnv = "CONNECTOR_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(redistest.Main(m))
}
