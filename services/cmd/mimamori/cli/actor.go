package cli

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
)

// actor is who runs an operator command, as the system authenticated it,
// recorded as the actor of what the command writes (requested_by,
// unlocked_by): with SASL (MIMAMORI_KAFKA_SASL_USER), the Kafka principal,
// whose password the broker checks before it takes the event; otherwise
// the OS account the process runs as, looked up from its uid (never from
// $USER, which anyone sets), with the host: cli:sasl:<user> or
// cli:os:<user>@<host>.
//
// by is what --by said, for scripts written when it was free text: empty,
// or the actor itself; anything else is refused, so that no event names
// someone who did not run the command.
func (e *env) actor(by string) (string, error) {
	id := osActor()
	if e.cfg.KafkaSASLMech != "" && e.cfg.KafkaSASLUser != "" {
		id = "cli:sasl:" + e.cfg.KafkaSASLUser
	}
	if by != "" && by != id {
		return "", usageError{fmt.Sprintf("--by %q: the actor recorded is the identity that runs the command, %s; "+
			"leave --by out (nothing was written)", by, id)}
	}
	return id, nil
}

func osActor() string {
	uid := strconv.Itoa(os.Getuid())
	name := "uid" + uid
	if u, err := user.LookupId(uid); err == nil && u.Username != "" {
		name = u.Username
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return "cli:os:" + name + "@" + host
}
