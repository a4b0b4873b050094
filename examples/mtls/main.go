// Command mtls gets its tokens from a token endpoint that is signed by a
// private CA and requires a client certificate (RFC 8705 tls_client_auth:
// the client is identified by its certificate and sends no secret), through
// WithTokenClient. The CA, the certificates, the token endpoint and the API
// are all made here, on loopback.
//
//	go run ./examples/mtls
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/oauthtransport/oauthtransport"
)

func main() {
	ca, caKey := newCA()
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	// The token endpoint: TLS with the private CA, a client certificate
	// required; the token it issues names the certificate's subject.
	idp := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		subject := r.TLS.PeerCertificates[0].Subject.CommonName
		fmt.Printf("token endpoint: client_id %q, certificate %q, secret sent: %t\n",
			r.PostForm.Get("client_id"), subject, r.PostForm.Get("client_secret") != "")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "token-for-" + subject, "token_type": "Bearer", "expires_in": 3600})
	}))
	idp.TLS = &tls.Config{Certificates: []tls.Certificate{issue(ca, caKey, "127.0.0.1", x509.ExtKeyUsageServerAuth)},
		ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	idp.StartTLS()
	defer idp.Close()

	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Printf("API: %s\n", r.Header.Get("Authorization"))
	}))
	defer api.Close()

	// The token requests' own client: trusts the private CA, presents our
	// certificate. API requests go through the default transport.
	tokenClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{issue(ca, caKey, "payments-service", x509.ExtKeyUsageClientAuth)},
	}}}
	src := oauthtransport.ClientCredentials(&clientcredentials.Config{
		ClientID: "payments", TokenURL: idp.URL + "/token", AuthStyle: oauth2.AuthStyleInParams,
	})
	tr, err := oauthtransport.New(src, oauthtransport.WithTokenClient(tokenClient))
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()

	resp, err := tr.Client().Get(api.URL)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println("status:", resp.StatusCode)
}

// newCA makes a private certificate authority.
func newCA() (*x509.Certificate, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "example private CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		log.Fatal(err)
	}
	return ca, key
}

// issue signs a certificate for name; "127.0.0.1" also gets that IP.
func issue(ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, usage x509.ExtKeyUsage) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		log.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
