package seal_test

import (
	"os"
	"testing"

	"github.com/wa2genesys/connectorcache/internal/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }
