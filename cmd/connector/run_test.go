package main

import (
	"io"
	"testing"

	"go.uber.org/zap/zapcore"
)

func TestNewLogger_UsesTheConfiguredLevel(t *testing.T) {
	tests := []struct {
		give        zapcore.Level
		wantEnabled []zapcore.Level
		wantSilent  []zapcore.Level
	}{
		{give: zapcore.DebugLevel, wantEnabled: []zapcore.Level{zapcore.DebugLevel, zapcore.InfoLevel}},
		{give: zapcore.InfoLevel, wantEnabled: []zapcore.Level{zapcore.InfoLevel, zapcore.WarnLevel}, wantSilent: []zapcore.Level{zapcore.DebugLevel}},
		{give: zapcore.WarnLevel, wantEnabled: []zapcore.Level{zapcore.WarnLevel, zapcore.ErrorLevel}, wantSilent: []zapcore.Level{zapcore.DebugLevel, zapcore.InfoLevel}},
	}
	for _, tt := range tests {
		log := newLogger(tt.give, io.Discard)
		for _, l := range tt.wantEnabled {
			if !log.Core().Enabled(l) {
				t.Errorf("newLogger(%v) does not log at %v", tt.give, l)
			}
		}
		for _, l := range tt.wantSilent {
			if log.Core().Enabled(l) {
				t.Errorf("newLogger(%v) logs at %v", tt.give, l)
			}
		}
	}
}
