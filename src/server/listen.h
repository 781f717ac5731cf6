/* The server's listening socket, opened by shoal rather than by libmicrohttpd so that the
 * address forms and the errors are ours: "HOST:PORT" with an IPv4 address or "localhost",
 * or "[IPv6]:PORT" ("[::1]:8080", "[::]:8080"). SO_REUSEADDR only (a restart may bind over
 * connections in TIME_WAIT); never SO_REUSEPORT, so a second server on a busy port fails
 * instead of silently sharing its traffic. */
#ifndef SHOAL_SERVER_LISTEN_H
#define SHOAL_SERVER_LISTEN_H

#include <stdbool.h>

#include "core/error.h"

/* Checks the address's form only (nothing is opened): 0 or SHOAL_ERR_INVALID_ARG. */
int sh_listen_check(const char *address, sh_err *err);

/* Opens, binds and listens. On success *fd is the socket (the caller closes it), *port the
 * bound port (the one picked when 0 was asked) and *ipv6 its family. */
int sh_listen_open(const char *listen, int *fd, int *port, bool *ipv6, sh_err *err);

#endif
