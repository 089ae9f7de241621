# Build settings; override on the command line: make PREFIX=/opt/pgcdc
VERSION = 0.1.0
PREFIX ?= /usr/local
BINDIR = $(PREFIX)/bin
MANDIR = $(PREFIX)/share/man
CC ?= cc
PKG_CONFIG ?= pkg-config

CFLAGS ?= -O2 -g
WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-missing-field-initializers
# CI=true (or WERROR=1) makes warnings fatal
ifneq ($(filter true 1,$(CI) $(WERROR)),)
WARN += -Werror
endif

PQ_CFLAGS := $(shell $(PKG_CONFIG) --cflags libpq 2>/dev/null || echo -I$$(pg_config --includedir 2>/dev/null))
PQ_LIBS := $(shell $(PKG_CONFIG) --libs libpq 2>/dev/null || echo -lpq)
JANSSON_CFLAGS := $(shell $(PKG_CONFIG) --cflags jansson 2>/dev/null)
JANSSON_LIBS := $(shell $(PKG_CONFIG) --libs jansson 2>/dev/null || echo -ljansson)
CURL_CFLAGS := $(shell $(PKG_CONFIG) --cflags libcurl 2>/dev/null)
CURL_LIBS := $(shell $(PKG_CONFIG) --libs libcurl 2>/dev/null || echo -lcurl)
CRYPTO_CFLAGS := $(shell $(PKG_CONFIG) --cflags libcrypto 2>/dev/null)
CRYPTO_LIBS := $(shell $(PKG_CONFIG) --libs libcrypto 2>/dev/null || echo -lcrypto)

MHD_CFLAGS := $(shell $(PKG_CONFIG) --cflags libmicrohttpd 2>/dev/null)
MHD_LIBS := $(shell $(PKG_CONFIG) --libs libmicrohttpd 2>/dev/null || echo -lmicrohttpd) -lpthread -lm

ALL_CFLAGS = -std=gnu11 $(WARN) $(CFLAGS) -MMD -MP -DPGCDC_VERSION='"$(VERSION)"' \
	$(PQ_CFLAGS) $(JANSSON_CFLAGS) $(CURL_CFLAGS) $(CRYPTO_CFLAGS) $(MHD_CFLAGS)
