// The official Node.js SDK's certificate download (wechatpay-axios-plugin's `wxpay crt`) against
// the sandbox's GET /v3/certificates: each certificate decrypted with the SDK's own AesGcm and the
// APIv3 key, then the answer verified by the SDK's own verifier with the certificates it lists;
// each is saved as `wechatpay_<serial>.pem` in `outDir`.
//
// Why two requests, not `wxpay crt` itself: in v0.9.6 the CLI injects the decrypted certificates
// into the `certs` object it passed to `new Wechatpay`, but the constructor has already copied
// that object (decorator.js: `const pubs = Object.fromEntries(...)`), so its verifier never sees
// them and the download fails against any server. The first request here decrypts (its
// verification fails as the CLI's does); the second is verified with what the first decrypted.
const { Wechatpay, Aes: { AesGcm } } = require('wechatpay-axios-plugin');
const fs = require('fs');
const path = require('path');
const [baseURL, keysDir, mchid, serial, apiv3Key, outDir] = process.argv.slice(2);
const privateKey = fs.readFileSync(`${keysDir}/apiclient_key.pem`);

const decrypted = {};
const injector = (response) => {
  (JSON.parse(response).data || []).forEach(({
    serial_no: serialNo, encrypt_certificate: { nonce, associated_data: aad, ciphertext },
  }) => {
    decrypted[serialNo] = AesGcm.decrypt(ciphertext, apiv3Key, nonce, aad);
  });
  return response;
};

(async () => {
  const first = new Wechatpay({
    baseURL, mchid, serial, privateKey, certs: { any: fs.readFileSync(`${keysDir}/wechatpay_pub_key.pem`) },
  });
  await first.v3.certificates.get({
    transformResponse: [injector, ...first.client.v3.defaults.transformResponse],
  }).catch(() => {});
  if (Object.keys(decrypted).length === 0) throw new Error('nothing decrypted');
  const second = new Wechatpay({
    baseURL, mchid, serial, privateKey, certs: decrypted,
  });
  const { data } = await second.v3.certificates.get();
  data.data.forEach(({ serial_no: serialNo }) => {
    fs.writeFileSync(path.join(outDir, `wechatpay_${serialNo}.pem`), decrypted[serialNo]);
  });
  console.log(JSON.stringify({ verified: true, certificates: data.data.map((c) => c.serial_no) }));
})().catch((e) => {
  console.log(JSON.stringify({ error: e.message, data: e.response && e.response.data }));
  process.exit(1);
});
