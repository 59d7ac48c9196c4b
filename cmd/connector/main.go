// Command connector is the reference host of the connectorcache module: it
// receives WhatsApp Cloud API webhooks, lets each message through once per
// tenant, and delivers it to Genesys Cloud Open Messaging (or, for local
// runs, as a JSON line on standard output). See README.md next to this file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal ends the process at once
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "connector:", err)
		os.Exit(1)
	}
}
