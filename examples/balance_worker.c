/*
 * balance_worker.c: a wpool balance-mode worker in C.  The master passes
 * each connection over fd 3; this worker answers one HTTP request on it
 * and reports it closed, which keeps least-conn balancing accurate.  It
 * says hello (protocol version 2): a burst comes in one message, and what
 * it closed is reported in one message before it waits for more.  Under
 * an older wpool (version 1 only) it reports each at once.
 *
 *	wpool -m balance -n 4 -b 127.0.0.1:8080 -- ./examples/balance_worker
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wpool-worker.h"

int
main(void)
{
	struct wpool_conn c;
	char	 req[4096], body[256], resp[512];
	int	 chan = wpool_channel(), n, blen, v2;
	const char *id = getenv("WPOOL_WORKER_ID");

	if (chan < 0) {
		fprintf(stderr, "balance_worker: run me under wpool -m "
		    "balance\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	v2 = wpool_hello(chan, WPOOL_BATCH) == 1;
	while (wpool_accept(chan, &c) == 0) {
		/* One request per connection keeps the example short. */
		n = (int)read(c.fd, req, sizeof(req));
		if (n > 0) {
			blen = snprintf(body, sizeof(body), "hello from "
			    "worker %s (pid %d), connection %llu from %s\n",
			    id ? id : "?", (int)getpid(), c.id, c.peer);
			n = snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\n"
			    "Content-Type: text/plain\r\nContent-Length: %d\r\n"
			    "Connection: close\r\n\r\n%s", blen, body);
			if (write(c.fd, resp, (size_t)n) < 0)
				perror("write");
		}
		close(c.fd);
		if (!v2)
			wpool_closed(chan, c.id);
		else {
			wpool_closed_later(chan, c.id);
			/* The next wpool_accept may wait: report them now. */
			if (wpool_pending() == 0)
				wpool_flush(chan);
		}
	}
	return 0;
}
