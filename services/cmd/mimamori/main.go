// Command mimamori is the one binary of the mimamori cloud: the whole
// platform (`mimamori run`, `mimamori demo`), one service for scale-out
// (`mimamori serve`), migrations, replay and the operator commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/mimamori/mimamori/services/cmd/mimamori/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Main(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) { // the help was the answer
			fmt.Fprintln(os.Stderr, "mimamori:", err)
		}
		os.Exit(cli.ExitCode(err))
	}
}
