// Command ferretdb runs FerretDB v1 with its SQLite backend for Castellan's tests.
//
// It embeds github.com/FerretDB/FerretDB/ferretdb instead of building cmd/ferretdb:
// that binary panics at start when FerretDB is not the main module (no
// build/version/version.txt in the module zip; see shared/design/STORES.md).
//
// Once listening it prints the MongoDB URI on one stdout line, so a caller can pass
// `-listen 127.0.0.1:0` and learn the port the OS chose, with no race for a free port.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP listen address (port 0: the OS picks one)")
	dataDir := flag.String("data-dir", "", "directory for the SQLite databases (required)")
	logLevel := flag.String("log-level", "error", "log level: debug, info, warn or error (warn logs every failed command in full)")
	watchStdin := flag.Bool("exit-on-stdin-close", false,
		"exit when stdin reaches EOF, so the server dies with the process that started it")
	flag.Parse()

	if err := run(*listen, *dataDir, *logLevel, *watchStdin); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
}

func run(listen, dataDir, logLevel string, watchStdin bool) error {
	if dataDir == "" {
		return fmt.Errorf("-data-dir is required")
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}

	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}

	if err = os.MkdirAll(abs, 0o700); err != nil {
		return err
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: listen},
		Logger:   logger,
		Handler:  "sqlite",
		// FerretDB's SQLite URI names a directory and must end with a slash.
		SQLiteURL: "file:" + abs + "/",
	})
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if watchStdin {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			stop()
		}()
	}

	// The listener is bound once New returns, so the address is final here.
	fmt.Println(f.MongoDBURI())

	return f.Run(ctx)
}
