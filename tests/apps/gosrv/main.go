package main

import (
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/coreos/go-systemd/activation"
)

func main() {
	s, _ := strconv.ParseFloat(os.Getenv("SLOW"), 64)
	time.Sleep(time.Duration(s * float64(time.Second)))
	ls, err := activation.Listeners()
	if err != nil || len(ls) == 0 {
		panic("no listeners")
	}
	http.Serve(ls[0], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) }))
}
