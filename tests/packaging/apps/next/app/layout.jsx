// The root layout: no next/font, nothing fetched from the network.
export const metadata = { title: "syncline + next" };

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
