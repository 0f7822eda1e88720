<?xml version="1.0" encoding="UTF-8"?>
<!-- Shows an RSS 2.0 or Atom 1.0 feed of beatfeeds as a readable page when a browser opens it.
     Feed readers ignore the stylesheet and read the feed itself. -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom"
    exclude-result-prefixes="atom">
  <xsl:output method="html" encoding="UTF-8" indent="yes"
      doctype-system="about:legacy-compat"/>

  <xsl:template match="/">
    <xsl:variable name="title" select="rss/channel/title | atom:feed/atom:title"/>
    <xsl:variable name="self" select="(rss/channel/atom:link[@rel='self'] | atom:feed/atom:link[@rel='self'])[1]/@href"/>
    <xsl:variable name="page" select="(rss/channel/link | atom:feed/atom:link[@rel='alternate']/@href)[1]"/>
    <html lang="en">
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="$title"/> (feed)</title>
        <style>
          body { font: 16px/1.5 system-ui, sans-serif; color: #1b1f24; margin: 0 auto; max-width: 60rem; padding: 0 1rem 2rem; }
          a { color: #0b4f8a; }
          a:focus { outline: 3px solid #f2b600; outline-offset: 2px; }
          .about { background: #eef4fb; padding: .75rem 1rem; border-radius: 6px; }
          .emergency { background: #fde8e8; color: #7d1414; padding: .5rem 1rem; border-radius: 4px; }
          code { background: #f3f4f6; padding: .1rem .3rem; word-break: break-all; }
          ul { list-style: none; padding: 0; }
          li { padding: .5rem 0; border-bottom: 1px solid #d0d7de; }
          .muted { color: #4a5561; }
        </style>
      </head>
      <body>
        <main>
          <h1><xsl:value-of select="$title"/></h1>
          <p class="about">This is a <strong>news feed</strong>. To follow it, copy its address
            into a feed reader (for example NetNewsWire, Feedly, Thunderbird or newsboat):
            <code><xsl:value-of select="$self"/></code></p>
          <p class="emergency">This feed is not monitored. In an emergency call 911.</p>
          <p><xsl:value-of select="rss/channel/description | atom:feed/atom:subtitle"/></p>
          <p><a href="{$page}">Open the page of this area</a></p>
          <h2>Latest entries</h2>
          <ul>
            <xsl:for-each select="rss/channel/item">
              <li>
                <a href="{link}"><xsl:value-of select="title"/></a>
                <div class="muted"><xsl:value-of select="category"/></div>
              </li>
            </xsl:for-each>
            <xsl:for-each select="atom:feed/atom:entry">
              <li>
                <a href="{atom:link/@href}"><xsl:value-of select="atom:title"/></a>
                <div class="muted"><xsl:value-of select="atom:category/@label"/></div>
              </li>
            </xsl:for-each>
          </ul>
        </main>
      </body>
    </html>
  </xsl:template>
</xsl:stylesheet>
