#include "server/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Pending connections the kernel holds before accept; bursts beyond it are refused. */
#define LISTEN_BACKLOG 256

static int parse(const char *address, struct sockaddr_storage *ss, socklen_t *len, int *port_out, sh_err *err)
{
    char host[64];
    const char *colon, *h0 = address;
    size_t hn;
    if (address[0] == '[') {   /* [v6]:port */
        const char *close = strchr(address, ']');
        if (!close || close[1] != ':')
            return sh_errf(err, SHOAL_ERR_INVALID_ARG, "listen address '%s': expected [IPV6]:PORT", address);
        h0 = address + 1;
        hn = (size_t)(close - h0);
        colon = close + 1;
    } else {
        colon = strrchr(address, ':');
        if (!colon)
            return sh_errf(err, SHOAL_ERR_INVALID_ARG, "listen address '%s': expected HOST:PORT or [IPV6]:PORT",
                           address);
        hn = (size_t)(colon - address);
        if (memchr(address, ':', hn))
            return sh_errf(err, SHOAL_ERR_INVALID_ARG,
                           "listen address '%s': an IPv6 address goes in brackets, e.g. [::1]:8080", address);
    }
    if (hn == 0 || hn >= sizeof host)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "listen address '%s': bad host", address);
    memcpy(host, h0, hn);
    host[hn] = '\0';
    const char *ps = colon + 1;
    char *end;
    errno = 0;
    long port = strtol(ps, &end, 10);
    if (!*ps || *ps < '0' || *ps > '9' || *end || errno || port < 0 || port > 65535)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "listen address '%s': port must be 0..65535", address);
    *port_out = (int)port;
    memset(ss, 0, sizeof *ss);
    if (!strcmp(host, "localhost"))
        snprintf(host, sizeof host, "127.0.0.1");
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (address[0] != '[' && inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof *a4;
        return 0;
    }
    if (address[0] == '[' && inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof *a6;
        return 0;
    }
    return sh_errf(err, SHOAL_ERR_INVALID_ARG, "listen address '%s': '%s' is not an IP%s address", address, host,
                   address[0] == '[' ? "v6" : "v4");
}

int sh_listen_check(const char *address, sh_err *err)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    int port = 0;
    return parse(address, &ss, &len, &port, err);
}

int sh_listen_open(const char *address, int *fd_out, int *port_out, bool *ipv6, sh_err *err)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    int port = 0;
    int rc = parse(address, &ss, &len, &port, err);
    if (rc)
        return rc;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return sh_errf(err, SHOAL_ERR_IO, "address on %s: socket: %s", address, strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
        int e = errno;
        close(fd);
        if (e == EADDRINUSE)
            return sh_errf(err, SHOAL_ERR_IO, "cannot listen on %s: port %d is already in use (another server?)",
                           address, port);
        return sh_errf(err, SHOAL_ERR_IO, "cannot listen on %s: %s", address, strerror(e));
    }
    if (listen(fd, LISTEN_BACKLOG) != 0) {
        int e = errno;
        close(fd);
        return sh_errf(err, SHOAL_ERR_IO, "cannot listen on %s: %s", address, strerror(e));
    }
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &bl) == 0)
        port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                 : ((struct sockaddr_in *)&bound)->sin_port);
    *fd_out = fd;
    *port_out = port;
    *ipv6 = ss.ss_family == AF_INET6;
    return 0;
}
