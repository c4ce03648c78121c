package fleet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// keyPair is a PEM certificate and key.
type keyPair struct {
	CertPEM, KeyPEM []byte
	cert            *x509.Certificate
	key             *ecdsa.PrivateKey
}

func newCA(cn string) (*keyPair, error) {
	return newCert(nil, cn, nil, true, nil)
}

// newCert makes a certificate signed by ca (self-signed when ca is nil).
func newCert(ca *keyPair, cn string, orgs []string, isCA bool, ips []net.IP, dns ...string) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key for %s: %w", cn, err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, fmt.Errorf("serial for %s: %w", cn, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		IPAddresses:  ips,
		DNSNames:     dns,
	}
	parent, signer := tmpl, key
	if isCA {
		tmpl.IsCA = true
		tmpl.BasicConstraintsValid = true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	if ca != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %s: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse certificate for %s: %w", cn, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal key for %s: %w", cn, err)
	}
	return &keyPair{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		cert:    cert,
		key:     key,
	}, nil
}

// clusterPKI is everything a cluster's control plane authenticates with.
type clusterPKI struct {
	dir string // DIR/<cluster>/pki
}

func (p clusterPKI) path(name string) string { return filepath.Join(p.dir, name) }

// writeClusterPKI writes a CA, the API server's serving certificate, an
// admin client certificate (system:masters), and the service account key pair.
func writeClusterPKI(dir, cluster string) (clusterPKI, *keyPair, *keyPair, error) {
	p := clusterPKI{dir: dir}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return p, nil, nil, err
	}
	ca, err := newCA("localfleet-" + cluster + "-ca")
	if err != nil {
		return p, nil, nil, err
	}
	serving, err := newCert(ca, "kube-apiserver", nil, false,
		[]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")},
		"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")
	if err != nil {
		return p, nil, nil, err
	}
	admin, err := newCert(ca, "localfleet-admin", []string{"system:masters"}, false, nil)
	if err != nil {
		return p, nil, nil, err
	}
	sa, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return p, nil, nil, fmt.Errorf("generate service account key: %w", err)
	}
	saPub, err := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	if err != nil {
		return p, nil, nil, fmt.Errorf("marshal service account key: %w", err)
	}
	files := map[string][]byte{
		"ca.crt":        ca.CertPEM,
		"ca.key":        ca.KeyPEM,
		"apiserver.crt": serving.CertPEM,
		"apiserver.key": serving.KeyPEM,
		"admin.crt":     admin.CertPEM,
		"admin.key":     admin.KeyPEM,
		"sa.key":        pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(sa)}),
		"sa.pub":        pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub}),
	}
	for name, data := range files {
		if err := os.WriteFile(p.path(name), data, 0o600); err != nil {
			return p, nil, nil, err
		}
	}
	return p, ca, admin, nil
}

// writeKubeconfig writes an admin kubeconfig whose cluster, user and context
// are all named after the cluster; the server certificate is verified
// against the cluster's CA.
func writeKubeconfig(path, cluster, server string, ca, admin *keyPair) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[cluster] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca.CertPEM}
	cfg.AuthInfos[cluster] = &clientcmdapi.AuthInfo{ClientCertificateData: admin.CertPEM, ClientKeyData: admin.KeyPEM}
	cfg.Contexts[cluster] = &clientcmdapi.Context{Cluster: cluster, AuthInfo: cluster, Namespace: "default"}
	cfg.CurrentContext = cluster
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return os.Chmod(path, 0o600)
}
