package eventlog

import (
	"context"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"
)

// clientLogger hands the franz-go client's own log to slog: its errors and
// warnings at those levels, its group lifecycle (joins, assignments,
// metadata updates) at debug, where a test's buffered log or an operator
// chasing a stuck consumer can read it without it crowding the service log.
type clientLogger struct{ l *slog.Logger }

func slogLevel(l kgo.LogLevel) slog.Level {
	switch l {
	case kgo.LogLevelError:
		return slog.LevelError
	case kgo.LogLevelWarn:
		return slog.LevelWarn
	case kgo.LogLevelInfo:
		return slog.LevelDebug
	default:
		return slog.LevelDebug - 4
	}
}

// Level is the most detailed kgo level whose records the handler keeps.
func (c clientLogger) Level() kgo.LogLevel {
	for _, l := range []kgo.LogLevel{kgo.LogLevelDebug, kgo.LogLevelInfo, kgo.LogLevelWarn, kgo.LogLevelError} {
		if c.l.Enabled(context.Background(), slogLevel(l)) {
			return l
		}
	}
	return kgo.LogLevelNone
}

func (c clientLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	c.l.Log(context.Background(), slogLevel(level), "kafka client: "+msg, keyvals...)
}
