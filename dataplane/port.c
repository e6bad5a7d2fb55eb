/*
 * port.c - port, queue and mbuf pool set-up. See port.h.
 */
#include "dataplane/port.h"

#include <errno.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rte_dev.h>
#include <rte_devargs.h>
#include <rte_ethdev.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "common/log.h"
#include "dataplane/port_mtu.h"

const uint8_t port_rss_key[40] = {
	0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
	0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
	0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
	0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
};

static uint16_t min_u16(uint16_t a, uint16_t b) { return a < b ? a : b; }

/* The kernel's MTU of interface if_index (0 if it cannot tell): what a
 * packet socket on it will send (larger frames fail with EMSGSIZE). */
static unsigned kernel_iface_mtu(uint32_t if_index)
{
	struct ifreq ifr;
	int s, r;

	memset(&ifr, 0, sizeof(ifr));
	if (if_index == 0 || !if_indextoname(if_index, ifr.ifr_name))
		return 0;
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return 0;
	r = ioctl(s, SIOCGIFMTU, &ifr);
	close(s);
	return r == 0 && ifr.ifr_mtu > 0 ? (unsigned)ifr.ifr_mtu : 0;
}

/*
 * The port's MTU: the device's own, or [net] mtu when that is larger and
 * the port takes it. rte_eth_dev_set_mtu() for most PMDs (a NIC's; DPDK
 * 22.11's net_tap refuses more than 1500). net_af_packet's ethdev limit is a
 * constant 1518-octet frame whatever its ring holds (port_mtu.h): there the
 * MTU is what both its ring frames (devarg framesz) and the kernel's MTU of
 * its interface allow. A port that takes less keeps its own MTU, and says
 * so: TCP then announces an MSS that fits it.
 */
static uint16_t port_pick_mtu(uint16_t pid, const struct rte_eth_dev_info *info,
			      unsigned want)
{
	uint16_t cur = 0;
	unsigned lim;
	int r;

	if (rte_eth_dev_get_mtu(pid, &cur) < 0 || cur == 0)
		cur = RTE_ETHER_MTU;
	if (want <= cur)
		return cur;
	if (info->driver_name && strcmp(info->driver_name, "net_af_packet") == 0) {
		const struct rte_devargs *da = rte_dev_devargs(info->device);
		unsigned ring = port_af_packet_max_mtu(da ? da->args : NULL);
		unsigned kern = kernel_iface_mtu(info->if_index);

		lim = ring < kern ? ring : kern;
		if (lim >= want)
			return (uint16_t)want;
		log_warn("port %u (net_af_packet): mtu %u does not fit (ring frames "
			 "take %u: devarg framesz; the interface's MTU is %u): mtu %u",
			 pid, want, ring, kern, lim > cur ? lim : cur);
		return (uint16_t)(lim > cur ? lim : cur);
	}
	r = rte_eth_dev_set_mtu(pid, (uint16_t)want);
	if (r == 0)
		return (uint16_t)want;
	log_warn("port %u (%s) does not take mtu %u (%s): mtu %u", pid, info->driver_name,
		 want, rte_strerror(-r), cur);
	return cur;
}

int port_setup(struct port_info *pi, const struct dp_conf *conf)
{
	struct rte_eth_conf ec;
	struct rte_eth_dev_info info;
	uint16_t pid, nq = (uint16_t)conf->workers, rxd = conf->port.rx_desc,
		 txd = conf->port.tx_desc;
	int socket, r;
	char name[RTE_MEMPOOL_NAMESIZE];

	memset(pi, 0, sizeof(*pi));
	if (rte_eth_dev_count_avail() == 0) {
		log_err("no Ethernet port: give a vdev or bind a NIC to vfio-pci");
		return -ENODEV;
	}
	RTE_ETH_FOREACH_DEV(pid) break;
	pi->port_id = pid;

	r = rte_eth_dev_info_get(pid, &info);
	if (r < 0) {
		log_err("port %u: cannot read device info: %s", pid, rte_strerror(-r));
		return r;
	}
	socket = rte_eth_dev_socket_id(pid);
	if (socket < 0)
		socket = 0;

	pi->tx_queues = min_u16(nq, info.max_tx_queues);
	pi->rx_queues = min_u16(nq, info.max_rx_queues);
	if (pi->tx_queues < nq) {
		log_err("port %u: %u workers need %u TX queues, device has %u",
			pid, nq, nq, info.max_tx_queues);
		return -EINVAL;
	}

	memset(&ec, 0, sizeof(ec));
	if (pi->rx_queues > 1 && info.flow_type_rss_offloads) {
		ec.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		ec.rx_adv_conf.rss_conf.rss_key = (uint8_t *)(uintptr_t)port_rss_key;
		ec.rx_adv_conf.rss_conf.rss_key_len = sizeof(port_rss_key);
		/* IPv4 and IPv6 (RTE_ETH_RSS_IP/TCP/UDP cover both: the
		 * NONFRAG_IPV6_TCP/UDP types hash source, destination and
		 * ports with the same symmetric key, as steer_hash6 does) */
		ec.rx_adv_conf.rss_conf.rss_hf = (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP |
						  RTE_ETH_RSS_UDP | RTE_ETH_RSS_NONFRAG_IPV6_TCP |
						  RTE_ETH_RSS_NONFRAG_IPV6_UDP) &
						 info.flow_type_rss_offloads;
		/* Our key, Toeplitz over the IPv4 TCP and UDP 4-tuple: the hash
		 * steer.c would compute, so steering may take it from the mbuf. */
		if ((info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_RSS_HASH) &&
		    info.hash_key_size == sizeof(port_rss_key) &&
		    (ec.rx_adv_conf.rss_conf.rss_hf & RTE_ETH_RSS_NONFRAG_IPV4_TCP) &&
		    (ec.rx_adv_conf.rss_conf.rss_hf & RTE_ETH_RSS_NONFRAG_IPV4_UDP)) {
			ec.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_RSS_HASH;
			pi->rss_hw = true;
		}
	}
	ec.rxmode.offloads |= info.rx_offload_capa & (RTE_ETH_RX_OFFLOAD_IPV4_CKSUM |
						      RTE_ETH_RX_OFFLOAD_TCP_CKSUM |
						      RTE_ETH_RX_OFFLOAD_UDP_CKSUM);
	ec.txmode.offloads |= info.tx_offload_capa & (RTE_ETH_TX_OFFLOAD_IPV4_CKSUM |
						      RTE_ETH_TX_OFFLOAD_TCP_CKSUM |
						      RTE_ETH_TX_OFFLOAD_UDP_CKSUM);
	pi->rx_offloads = ec.rxmode.offloads;
	pi->tx_offloads = ec.txmode.offloads;
	r = rte_eth_dev_configure(pid, pi->rx_queues, pi->tx_queues, &ec);
	if (r < 0) {
		log_err("port %u: configure (%u rx, %u tx queues) failed: %s", pid,
			pi->rx_queues, pi->tx_queues, rte_strerror(-r));
		return r;
	}
	r = rte_eth_dev_adjust_nb_rx_tx_desc(pid, &rxd, &txd);
	if (r < 0)
		return r;

	pi->mtu = port_pick_mtu(pid, &info, conf->addr.mtu);

	/* one frame of that MTU in one mbuf (port_mtu.h) */
	snprintf(name, sizeof(name), "mbufs_s%d", socket);
	pi->pool = rte_pktmbuf_pool_create(name, conf->port.mbufs, conf->port.mbuf_cache,
					   0, port_mbuf_room(pi->mtu), socket);
	if (!pi->pool) {
		log_err("port %u: mbuf pool of %u (%u octets each) failed: %s", pid,
			conf->port.mbufs, port_mbuf_room(pi->mtu), rte_strerror(rte_errno));
		return -ENOMEM;
	}
	for (uint16_t q = 0; q < pi->rx_queues; q++) {
		r = rte_eth_rx_queue_setup(pid, q, rxd, (unsigned)socket, NULL, pi->pool);
		if (r < 0) {
			log_err("port %u: rx queue %u: %s", pid, q, rte_strerror(-r));
			return r;
		}
	}
	for (uint16_t q = 0; q < pi->tx_queues; q++) {
		r = rte_eth_tx_queue_setup(pid, q, txd, (unsigned)socket, NULL);
		if (r < 0) {
			log_err("port %u: tx queue %u: %s", pid, q, rte_strerror(-r));
			return r;
		}
	}
	r = rte_eth_macaddr_get(pid, &pi->mac);
	if (r < 0)
		return r;
	r = rte_eth_dev_start(pid);
	if (r < 0) {
		log_err("port %u: start failed: %s", pid, rte_strerror(-r));
		return r;
	}
	/* Our MAC is ours alone: no promiscuous mode needed. IPv6 Neighbor
	 * Discovery does need multicast (solicited-node and all-nodes
	 * groups, 33:33:...): all-multicast, which eth.c filters to our
	 * groups. Not fatal where the PMD cannot (IPv6 then needs the
	 * neighbours to learn us from our own solicitations). */
	r = rte_eth_allmulticast_enable(pid);
	if (r < 0)
		log_warn("port %u: all-multicast not enabled (%s): IPv6 neighbours may not "
			 "reach our solicited-node group", pid, rte_strerror(-r));
	log_info("port %u up (%s): %u rx / %u tx queues, %u+%u descriptors, mtu %u "
		 "(mbuf room %u), mac " RTE_ETHER_ADDR_PRT_FMT, pid, info.driver_name,
		 pi->rx_queues, pi->tx_queues, rxd, txd, pi->mtu, port_mbuf_room(pi->mtu),
		 RTE_ETHER_ADDR_BYTES(&pi->mac));
	log_info("port %u offloads: rx checksum%s%s%s, tx checksum%s%s%s, rss hash %s", pid,
		 pi->rx_offloads & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM ? " ipv4" : "",
		 pi->rx_offloads & RTE_ETH_RX_OFFLOAD_TCP_CKSUM ? " tcp" : "",
		 pi->rx_offloads & RTE_ETH_RX_OFFLOAD_UDP_CKSUM ? " udp" : "",
		 pi->tx_offloads & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM ? " ipv4" : "",
		 pi->tx_offloads & RTE_ETH_TX_OFFLOAD_TCP_CKSUM ? " tcp" : "",
		 pi->tx_offloads & RTE_ETH_TX_OFFLOAD_UDP_CKSUM ? " udp" : "",
		 pi->rss_hw ? "from the device" : "in software");
	return 0;
}

void port_close(struct port_info *pi)
{
	int r = rte_eth_dev_stop(pi->port_id);
	if (r < 0)
		log_warn("port %u: stop: %s", pi->port_id, rte_strerror(-r));
	rte_eth_dev_close(pi->port_id);
	log_info("port %u closed", pi->port_id);
}
