/*
 * test_smtp_policy.c - relay decisions: mynetworks, relay_domains, empty
 * policy, address literals, routing tricks, configuration errors.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <string.h>

#include "dataplane/smtp/smtp_policy.h"

static struct smtp_policy p;

static uint32_t ip(const char *s)
{
	uint32_t a = 0;
	cr_assert_eq(smtp_parse_ipv4(s, &a), 0, "%s", s);
	return a;
}

#define ALLOW(cl, local, dom, lit) \
	cr_expect_eq(smtp_policy_check(&p, ip(cl), local, dom, lit), SMTP_RELAY_OK, \
		     "%s -> %s@%s should relay", cl, local, dom)
#define DENY(cl, local, dom, lit) \
	cr_expect_eq(smtp_policy_check(&p, ip(cl), local, dom, lit), SMTP_RELAY_DENIED, \
		     "%s -> %s@%s should be denied", cl, local, dom)

Test(policy, empty_policy_relays_nothing)
{
	cr_assert_eq(smtp_policy_init(&p, NULL, NULL), 0);
	DENY("198.18.0.9", "a", "example.com", false);
	DENY("127.0.0.1", "a", "example.com", false);
	DENY("127.0.0.1", "a", "[127.0.0.1]", true);
	cr_assert_eq(smtp_policy_init(&p, "", "  "), 0);
	DENY("10.0.0.1", "a", "example.com", false);
	cr_expect_not(smtp_policy_trusted(&p, ip("10.0.0.1")));
}

Test(policy, mynetworks)
{
	cr_assert_eq(smtp_policy_init(&p, "198.18.0.0/24 10.0.0.0/8,192.0.2.5", NULL), 0);
	cr_expect_eq(p.nnets, 3);
	ALLOW("198.18.0.9", "a", "anywhere.example", false);
	ALLOW("198.18.0.255", "a", "anywhere.example", false);
	ALLOW("10.255.1.2", "a", "anywhere.example", false);
	ALLOW("192.0.2.5", "a", "anywhere.example", false);
	DENY("192.0.2.6", "a", "anywhere.example", false);
	DENY("198.18.1.9", "a", "anywhere.example", false);
	DENY("11.0.0.1", "a", "anywhere.example", false);
	/* trusted clients may use routing characters and literals */
	ALLOW("198.18.0.9", "a%b", "anywhere.example", false);
	ALLOW("198.18.0.9", "a", "[192.0.2.1]", true);
}

Test(policy, relay_domains_exact_and_subdomains)
{
	cr_assert_eq(smtp_policy_init(&p, "198.18.0.0/24", "Example.COM .sub.example.net"), 0);
	ALLOW("203.0.113.7", "a", "example.com", false);
	ALLOW("203.0.113.7", "a", "EXAMPLE.com", false);
	ALLOW("203.0.113.7", "a", "example.com.", false);
	DENY("203.0.113.7", "a", "www.example.com", false);
	DENY("203.0.113.7", "a", "notexample.com", false);
	DENY("203.0.113.7", "a", "example.com.evil.example", false);
	ALLOW("203.0.113.7", "a", "a.sub.example.net", false);
	ALLOW("203.0.113.7", "a", "x.y.SUB.example.net", false);
	DENY("203.0.113.7", "a", "sub.example.net", false);
	DENY("203.0.113.7", "a", "xsub.example.net", false);
	DENY("203.0.113.7", "a", "example.net", false);
	DENY("203.0.113.7", "a", "gmail.example", false);
}

Test(policy, literals_and_routing_tricks_from_outside)
{
	cr_assert_eq(smtp_policy_init(&p, "198.18.0.0/24", "example.com"), 0);
	DENY("203.0.113.7", "a", "[198.18.0.2]", true);
	DENY("203.0.113.7", "a%victim.example", "example.com", false);
	DENY("203.0.113.7", "victim.example!a", "example.com", false);
	DENY("203.0.113.7", "\"a@victim.example\"", "example.com", false);
	ALLOW("203.0.113.7", "plain", "example.com", false);
	cr_expect_eq(smtp_policy_check(&p, ip("203.0.113.7"), "a", NULL, false), SMTP_RELAY_DENIED);
}

Test(policy, bad_configuration_is_refused_and_empty)
{
	static const char *const bad_nets[] = {
		"0.0.0.0/0", "10.0.0.0/33", "10.0.0.1/8", "10.0.0/8", "banana",
		"10.0.0.0/", "10.0.0.0/x", "1.2.3.4/123",
	};
	for (size_t i = 0; i < sizeof(bad_nets) / sizeof(bad_nets[0]); i++) {
		cr_expect_eq(smtp_policy_init(&p, bad_nets[i], "example.com"), -1, "%s", bad_nets[i]);
		cr_expect_eq(p.nnets, 0);
		cr_expect_eq(p.ndomains, 0);
		DENY("10.0.0.1", "a", "example.com", false);
	}
	cr_expect_eq(smtp_policy_init(&p, NULL, "bad_domain.example"), -1);
	cr_expect_eq(smtp_policy_init(&p, NULL, "a..b"), -1);
	cr_expect_eq(smtp_policy_init(&p, NULL, "."), -1);
	cr_expect_eq(smtp_policy_init(&p, "192.0.2.1/32", NULL), 0);
	ALLOW("192.0.2.1", "a", "x.example", false);
}

/* RFC 5321 4.5.1: postmaster, in any case, alone or at our hostname, is
 * ours and open to anyone; postmaster elsewhere is an ordinary address. */
Test(policy, postmaster_is_ours_alone_or_at_our_hostname)
{
	cr_expect(smtp_policy_postmaster("postmaster", "", "mx.sluice.test"));
	cr_expect(smtp_policy_postmaster("Postmaster", NULL, "mx.sluice.test"));
	cr_expect(smtp_policy_postmaster("POSTMASTER", "mx.sluice.test", "mx.sluice.test"));
	cr_expect(smtp_policy_postmaster("PostMaster", "MX.Sluice.TEST", "mx.sluice.test"));
	cr_expect(smtp_policy_postmaster("postmaster", "mx.sluice.test.", "mx.sluice.test"));
	cr_expect(smtp_policy_postmaster("postmaster", "mx.sluice.test", "MX.SLUICE.TEST."));
	cr_expect_not(smtp_policy_postmaster("postmaster", "sluice.test", "mx.sluice.test"));
	cr_expect_not(smtp_policy_postmaster("postmaster", "other.example", "mx.sluice.test"));
	cr_expect_not(smtp_policy_postmaster("postmaster", "mx.sluice.test.evil", "mx.sluice.test"));
	cr_expect_not(smtp_policy_postmaster("postmasters", "mx.sluice.test", "mx.sluice.test"));
	cr_expect_not(smtp_policy_postmaster("postmaste", "", "mx.sluice.test"));
	cr_expect_not(smtp_policy_postmaster("\"postmaster\"", "mx.sluice.test", "mx.sluice.test"));
	cr_expect_not(smtp_policy_postmaster("root", "mx.sluice.test", "mx.sluice.test"));
	cr_expect_not(smtp_policy_postmaster(NULL, "mx.sluice.test", "mx.sluice.test"));
	/* the relay decision itself is unchanged: postmaster@elsewhere from
	 * outside mynetworks is still relaying */
	cr_assert_eq(smtp_policy_init(&p, "198.18.0.0/24", "example.com"), 0);
	DENY("203.0.113.7", "postmaster", "other.example", false);
	ALLOW("203.0.113.7", "postmaster", "example.com", false);
}

static const uint8_t *ip6(const char *s)
{
	static uint8_t a[16];
	struct in6_addr x;
	cr_assert_eq(inet_pton(AF_INET6, s, &x), 1, "%s", s);
	memcpy(a, x.s6_addr, 16);
	return a;
}

#define ALLOW6(cl, local, dom, lit) \
	cr_expect_eq(smtp_policy_check6(&p, ip6(cl), local, dom, lit), SMTP_RELAY_OK, \
		     "%s -> %s@%s should relay", cl, local, dom)
#define DENY6(cl, local, dom, lit) \
	cr_expect_eq(smtp_policy_check6(&p, ip6(cl), local, dom, lit), SMTP_RELAY_DENIED, \
		     "%s -> %s@%s should be denied", cl, local, dom)

/* mynetworks takes IPv6 CIDRs beside IPv4 ones; each family matches only
 * its own networks; prefixes not on a byte boundary are honoured. */
Test(policy, mynetworks_ipv6)
{
	cr_assert_eq(smtp_policy_init(&p, "198.18.0.0/24 fd00:5c::/64, 2001:db8:40::/42 2001:db8::7",
				      "example.com"), 0);
	cr_expect_eq(p.nnets, 1);
	cr_expect_eq(p.nnets6, 3);
	ALLOW6("fd00:5c::1", "a", "anywhere.example", false);
	ALLOW6("fd00:5c::ffff:1", "a", "anywhere.example", false);
	DENY6("fd00:5c:0:1::1", "a", "anywhere.example", false);
	ALLOW6("2001:db8:40::1", "a", "anywhere.example", false);
	ALLOW6("2001:db8:7f:ffff::1", "a", "anywhere.example", false);	/* /42: 0x40-0x7f */
	DENY6("2001:db8:80::1", "a", "anywhere.example", false);
	DENY6("2001:db8:3f::1", "a", "anywhere.example", false);
	ALLOW6("2001:db8::7", "a", "[IPv6:2001:db8::1]", true);
	DENY6("2001:db8::8", "a", "anywhere.example", false);
	/* IPv4-shaped bytes in an IPv6 address are not the IPv4 network */
	DENY6("c612:0::1", "a", "anywhere.example", false);
	/* outsiders still reach relay_domains, not literals */
	ALLOW6("2001:db8:ffff::1", "a", "example.com", false);
	DENY6("2001:db8:ffff::1", "a", "[IPv6:fd00:5c::2]", true);
	cr_expect(smtp_policy_trusted6(&p, ip6("fd00:5c::9")));
	cr_expect_not(smtp_policy_trusted6(&p, ip6("::1")));
	static const char *const bad[] = {
		"::/0", "fd00::/129", "fd00::1/64", "fd00::/", "fd00:::1/64", "fd00::/6x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_expect_eq(smtp_policy_init(&p, bad[i], NULL), -1, "%s", bad[i]);
		cr_expect_eq(p.nnets6, 0);
	}
}
