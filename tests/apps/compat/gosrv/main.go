// Go on go-systemd's activation.Listeners; Go has no graceful stop of its
// own, so the app calls http.Server.Shutdown on TERM (GRACEFUL=0: Go's
// default, exit at once).
package main

import (
	"context"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/activation"
)

func main() {
	// SLOW=S: S seconds before it takes its sockets, as a large app
	// loads: net.FileListener puts a socket in Go's epoll at once.
	slow, _ := strconv.ParseFloat(os.Getenv("SLOW"), 64)
	time.Sleep(time.Duration(slow * float64(time.Second)))
	ls, err := activation.Listeners()
	if err != nil || len(ls) == 0 {
		panic("no listeners")
	}
	id := os.Getenv("WPOOL_WORKER_ID")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok " + id + "\n"))
	})}
	done := make(chan struct{})
	if os.Getenv("GRACEFUL") != "0" {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		go func() { <-c; srv.Shutdown(context.Background()); close(done) }()
	}
	if srv.Serve(ls[0]) == http.ErrServerClosed {
		<-done
	}
}
