// Command gitserve serves the git repositories under a folder over smart
// HTTP on loopback (git http-backend), for `make demo`: the daemon fetches
// the demo fleet repo from it like from any git server.
//
//	go run ./hack/gitserve --root DIR --addr 127.0.0.1:0 --url-file FILE
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/fleetsync/fleetsync/internal/gitserver"
)

func main() {
	root := flag.String("root", "", "folder holding the repositories (served as /<name>/.git)")
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback)")
	urlFile := flag.String("url-file", "", "write the server's base URL here once listening")
	flag.Parse()
	if err := run(*root, *addr, *urlFile); err != nil {
		fmt.Fprintln(os.Stderr, "gitserve:", err)
		os.Exit(1)
	}
}

func run(root, addr, urlFile string) error {
	if root == "" {
		return errors.New("--root is required")
	}
	ctx := context.Background()
	h, err := gitserver.HTTPHandler(ctx, root)
	if err != nil {
		return err
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	url := "http://" + ln.Addr().String()
	if urlFile != "" {
		if err := os.WriteFile(urlFile, []byte(url+"\n"), 0o600); err != nil {
			return err
		}
	}
	fmt.Println("serving", root, "at", url)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	return srv.Serve(ln)
}
